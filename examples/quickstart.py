"""Quick start: hash features with NSH, search the codes, score the ranking.

Run: ``python examples/quickstart.py [--fast]``
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sortedhash import HammingNeighbors, NSHTransformer
from sortedhash.metrics import mean_average_precision, precision_at_k

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true", help="a few epochs only (for CI)")
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)          # NSH expects standardised features
queries, database = slice(0, 200), slice(200, None)

# 1. Learn 64-bit codes; transform returns packed uint8 codes (8 bytes a row).
nsh = NSHTransformer(n_bits=64, random_state=0, max_epochs=3 if args.fast else 50)
codes = nsh.fit(X[database]).transform(X)
print("codes:", codes.shape, codes.dtype)

# 2. Exact Hamming search over the database codes.
nn = HammingNeighbors(n_neighbors=10).fit(codes[database])
dist, ind = nn.kneighbors(codes[queries])
print("first query: neighbours", ind[0, :5], "at Hamming distances", dist[0, :5])
print("share of the 10 neighbours with the query's digit:",
      np.mean(y[database][ind] == y[queries][:, None]).round(3))

# 3. Retrieval quality of the whole ranking.
print("mAP:", round(mean_average_precision(codes[queries], y[queries], codes[database], y[database]), 3))
print("precision@10:", round(precision_at_k(codes[queries], y[queries], codes[database], y[database], k=10), 3))
