"""Exact Hamming k-NN: HammingNeighbors against faiss, a numpy reference and the popcount bound.

For each database size N, code length and k, at 1 and 2 threads, on random packed codes:
queries per second of HammingNeighbors (numba), faiss IndexBinaryFlat (when installed), a
numpy XOR + np.bitwise_count + stable-sort reference (on a subset of queries), and a pass
that only computes every popcount (the bound no exact method can beat). Checks that the
neighbour distances agree exactly with faiss, and prints the ratios to faiss and to the bound.

Run: ``python benchmarks/hamming_search.py [--sizes 100000 1000000 10000000] [--bits 64 256]``.
"""

import argparse
import time

import numba
import numpy as np

from sortedhash import HammingNeighbors
from sortedhash.neighbors._kernels import pack_words, popcount_bound

try:
    import faiss
except ImportError:  # pragma: no cover
    faiss = None


def best_of(fn, repeats=2):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--bits", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--numpy-queries", type=int, default=50, help="queries for the slow numpy reference")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"numba {numba.__version__}, faiss {getattr(faiss, '__version__', 'not installed')}; "
          f"queries per second, best of 2")
    header = (f"{'N':>10} {'bits':>4} {'k':>4} {'thr':>3} | {'ours':>8} {'faiss':>8} {'numpy':>8} {'bound':>8} | "
              f"{'ours/faiss':>10} {'ours/bound':>10} {'numpy/faiss':>11} | same dist")
    print(header)
    for n_bits in args.bits:
        for n in args.sizes:
            db = rng.integers(0, 256, (n, n_bits // 8), dtype=np.uint8)
            queries = rng.integers(0, 256, (args.queries, n_bits // 8), dtype=np.uint8)
            words, qwords = pack_words(db), pack_words(queries).T
            index = None
            if faiss is not None:
                index = faiss.IndexBinaryFlat(n_bits)
                index.add(db)
            ref = HammingNeighbors(backend="numpy").fit(db)
            for k in args.k:
                for threads in (1, 2):
                    ours = HammingNeighbors(n_neighbors=k, n_jobs=threads).fit(db)
                    ours.kneighbors(queries[:8])  # compile / warm up
                    t_ours, (dist, _) = best_of(lambda: ours.kneighbors(queries))
                    t_bound, _ = best_of(lambda: popcount_bound(words, qwords, n_threads=threads))
                    qps = {"ours": args.queries / t_ours, "bound": args.queries / t_bound}
                    same = "n/a"
                    if index is not None:
                        faiss.omp_set_num_threads(threads)
                        t_faiss, (fdist, _) = best_of(lambda: index.search(queries, k))
                        qps["faiss"] = args.queries / t_faiss
                        same = "yes" if np.array_equal(fdist, dist) else "NO"
                    if threads == 1:
                        sub = queries[: args.numpy_queries]
                        t_np, (ndist, _) = best_of(lambda: ref.kneighbors(sub, n_neighbors=k), repeats=1)
                        qps["numpy"] = len(sub) / t_np
                        assert np.array_equal(ndist, dist[: len(sub)])
                    f = qps.get("faiss", np.nan)
                    print(f"{n:>10} {n_bits:>4} {k:>4} {threads:>3} | {qps['ours']:8.0f} {f:8.0f} "
                          f"{qps.get('numpy', np.nan):8.0f} {qps['bound']:8.0f} | {qps['ours'] / f:10.2f} "
                          f"{qps['ours'] / qps['bound']:10.2f} {qps.get('numpy', np.nan) / f:11.2f} | {same}",
                          flush=True)


if __name__ == "__main__":
    main()
