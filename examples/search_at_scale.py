"""Exact Hamming search at scale: HammingNeighbors against faiss's IndexBinaryFlat.

Run: ``python examples/search_at_scale.py [--rows 1000000] [--bits 64]``
(see benchmarks/hamming_search.py for the full comparison).
"""

import argparse
import time

import numpy as np

from sortedhash import HammingNeighbors

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=1_000_000)
parser.add_argument("--bits", type=int, default=64)
parser.add_argument("--queries", type=int, default=1000)
args = parser.parse_args()

rng = np.random.default_rng(0)
database = rng.integers(0, 256, (args.rows, args.bits // 8), dtype=np.uint8)
queries = rng.integers(0, 256, (args.queries, args.bits // 8), dtype=np.uint8)

nn = HammingNeighbors(n_neighbors=100, n_jobs=-1).fit(database)  # all cores
nn.kneighbors(queries[:5])  # compile the kernel once
start = time.perf_counter()
dist, ind = nn.kneighbors(queries)
ours = time.perf_counter() - start
print(f"HammingNeighbors: {args.queries / ours:,.0f} queries/s")

try:
    import faiss
except ImportError:
    print("faiss is not installed: pip install faiss-cpu to compare")
else:
    index = faiss.IndexBinaryFlat(args.bits)
    index.add(database)  # same packed codes, same bit order
    start = time.perf_counter()
    fdist, _ = index.search(queries, 100)
    theirs = time.perf_counter() - start
    print(f"faiss IndexBinaryFlat: {args.queries / theirs:,.0f} queries/s; ratio {theirs / ours:.2f}x; "
          f"same distances: {np.array_equal(fdist, dist)}")
