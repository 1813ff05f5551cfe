"""Two or more versions of the exact Hamming kernel module side by side, with faiss.

For kernel work: each ``--kernels`` path is a copy of ``sortedhash/neighbors/_kernels.py``
(e.g. ``git show HEAD:sortedhash/neighbors/_kernels.py > old.py``) loaded as its own module,
so all versions run in one process on the same codes, alternating, best of ``--repeats``.
Prints queries per second of each version's ``knn_search``, of the installed kernel's
distance pass alone (``bound``, from ``benchmarks/hamming_search.py``), of faiss
``IndexBinaryFlat`` when installed, each one's ratio to faiss, and whether every version's
neighbour distances equal the first's (and faiss's).

Run: ``python research/hamming_kernel_ab.py --kernels old.py sortedhash/neighbors/_kernels.py``.
"""

import argparse
import os
import pathlib
import time

import numpy as np
from _module_copies import load_copies, load_copy

# Copies of the kernel module are compiled afresh: numba's cache could not load them back
# (its pickles name a module that cannot be imported), so switch sortedhash's cache off.
os.environ["SORTEDHASH_CACHE_DIR"] = "off"

ROOT = pathlib.Path(__file__).resolve().parents[1]

try:
    import faiss
except ImportError:  # pragma: no cover
    faiss = None


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", nargs="+", required=True, help="copies of _kernels.py to compare")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--bits", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    kernels = load_copies(parser, args.kernels)
    names = [name for name, _ in kernels]
    _, search = load_copy(ROOT / "benchmarks" / "hamming_search.py")
    print(f"faiss {getattr(faiss, '__version__', 'not installed')}; k={args.k}; queries per second, "
          f"best of {args.repeats}; x = ratio to faiss", flush=True)
    rng = np.random.default_rng(0)
    for n_bits in args.bits:
        for n in args.sizes:
            db = rng.integers(0, 256, (n, n_bits // 8), dtype=np.uint8)
            queries = rng.integers(0, 256, (args.queries, n_bits // 8), dtype=np.uint8)
            words = kernels[0][1].pack_words(db)
            qwords = np.ascontiguousarray(kernels[0][1].pack_words(queries).T)
            index = None
            if faiss is not None:
                index = faiss.IndexBinaryFlat(n_bits)
                index.add(db)
            for threads in args.threads:
                best = {}
                dists = {}
                for _ in range(args.repeats):
                    for name, module in kernels:
                        for some in (4, 16):  # compile both kernels: one query at a time, and 16 a vector
                            module.knn_search(words, qwords[:some], args.k, n_bits, n_threads=threads)
                        t, (dist, _) = timed(lambda: module.knn_search(words, qwords, args.k, n_bits,
                                                                       n_threads=threads))
                        best[name] = min(best.get(name, np.inf), t)
                        dists[name] = dist
                    tb = search.bound_time(words, qwords, threads, repeats=1)
                    best["bound"] = min(best.get("bound", np.inf), tb)
                    if index is not None:
                        faiss.omp_set_num_threads(threads)
                        t, (fdist, _) = timed(lambda: index.search(queries, args.k))
                        best["faiss"] = min(best.get("faiss", np.inf), t)
                        dists["faiss"] = fdist.astype(np.int64)
                same = all(np.array_equal(d, dists[names[0]]) for d in dists.values())
                f = best.get("faiss", np.nan)
                cells = "  ".join(f"{name} {args.queries / t:8.0f} (x{f / t:4.2f})" for name, t in best.items())
                print(f"N={n:>9} bits={n_bits:>3} thr={threads} | {cells} | same distances: {same}", flush=True)


if __name__ == "__main__":
    main()
