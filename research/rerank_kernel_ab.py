"""Two or more versions of the float re-ranking kernel side by side, in nanoseconds a candidate.

For kernel work: each ``--kernels`` path is a copy of ``sortedhash/neighbors/_rerank_kernel.py``
(e.g. ``git show HEAD~1:sortedhash/neighbors/_rerank_kernel.py > before.py``) loaded as its own
module, so all versions run in one process on the same random float32 rows and candidates,
alternating, best of ``--repeats``, one thread. Prints each version's time a candidate and
whether every version returns the first's neighbours and distances.

Run: ``python research/rerank_kernel_ab.py --kernels before.py sortedhash/neighbors/_rerank_kernel.py``.
"""

import argparse
import os
import time

import numpy as np
from _module_copies import load_copies

os.environ["SORTEDHASH_CACHE_DIR"] = "off"  # copies compile afresh (see hamming_kernel_ab.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", nargs="+", required=True, help="copies of _rerank_kernel.py to compare")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=384)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--k", type=int, nargs="+", default=[10])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    kernels = load_copies(parser, args.kernels)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    queries = rng.standard_normal((args.queries, args.features))
    candidates = np.stack([rng.choice(args.rows, args.candidates, replace=False) for _ in queries])
    print(f"{args.rows} x {args.features} float32 rows, {args.candidates} random candidates a query, "
          f"{args.queries} queries, one thread, best of {args.repeats}; ns a candidate", flush=True)
    for k in args.k:
        best, results = {}, {}
        for _, module in kernels:  # compile
            module.rerank(X, norms, queries[:2], candidates[:2], k, "cosine", n_threads=1)
        for _ in range(args.repeats):
            for name, module in kernels:
                start = time.perf_counter()
                results[name] = module.rerank(X, norms, queries, candidates, k, "cosine", n_threads=1)
                best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
        first = results[kernels[0][0]]
        same = all(np.array_equal(r[1], first[1]) and np.array_equal(r[0], first[0]) for r in results.values())
        cells = "  ".join(f"{name} {t / (args.queries * args.candidates) * 1e9:6.0f}" for name, t in best.items())
        print(f"k={k:>4} | {cells} | same results: {same}", flush=True)


if __name__ == "__main__":
    main()
