"""Two or more versions of the multi-index hashing module side by side, on the same codes.

For MIH work: each ``--kernels`` path is a copy of ``sortedhash/neighbors/_mih.py`` (e.g.
``git show HEAD:sortedhash/neighbors/_mih.py > old.py``) loaded as its own module, so all
versions run in one process on the same codes and queries (each on tables it built), alternating, best of
``--repeats``, one thread. Prints each version's queries per second of ``mih_knn`` for each
k, the mean work (bucket probes + candidates) a query, and whether every version's
distances and indices equal the first's; then the scan's queries per second on the same
codes and how many codes it compares in the time the first version spends on one unit of
work (what ``SCAN_CODES_PER_WORK`` in ``_mih.py`` stands for).

Codes: ``--codes PATH.npy`` (packed uint8 codes, e.g. the learned codes that
``benchmarks/search_scale.py`` caches in its ``--workdir``) with ``--queries PATH.npy``, or
``--uniform N`` random codes. ``--mmap`` searches the codes memory-mapped in place (64-bit
codes only), as ``HammingNeighbors`` does with a read-only ``np.load(..., mmap_mode="r")``.

``--budget W`` gives every query that work budget, as ``algorithm="auto"`` does (about two
scans is ``2 N / SCAN_CODES_PER_WORK``, half of it for a few queries a call): each version then
also prints how many queries gave up, and the results are compared on the queries every
version answered (the same ones must give up).

Run: ``python research/mih_kernel_ab.py --kernels old.py sortedhash/neighbors/_mih.py
--codes DIR/learned_newsgroups_64_50_10000000_5.0.npy --queries
DIR/learned_newsgroups_64_50_10000000_5.0.queries.npy [--mmap]``.
"""

import argparse
import os
import time

import numpy as np
from _module_copies import load_copies

# Copies of the module are compiled afresh: numba's cache could not load them back.
os.environ["SORTEDHASH_CACHE_DIR"] = "off"


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def codes_and_queries(args):
    from sortedhash.neighbors._kernels import pack_words

    if args.codes:
        codes = np.load(args.codes, mmap_mode="r" if args.mmap else None)
        queries = np.load(args.queries)
    else:
        rng = np.random.default_rng(0)
        codes = rng.integers(0, 256, (args.uniform, args.bits // 8), dtype=np.uint8)
        queries = rng.integers(0, 256, (args.n_queries, args.bits // 8), dtype=np.uint8)
    if args.mmap:
        if codes.shape[1] != 8:
            raise SystemExit("--mmap: only 64-bit codes are searched in place")
        words = codes.view("<u8").reshape(1, -1)
    else:
        words = pack_words(np.asarray(codes))
    return words, np.ascontiguousarray(pack_words(queries).T), 8 * codes.shape[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", nargs="+", required=True, help="copies of _mih.py to compare")
    parser.add_argument("--codes", help="packed uint8 codes (.npy)")
    parser.add_argument("--queries", help="packed uint8 queries (.npy), with --codes")
    parser.add_argument("--uniform", type=int, default=1_000_000, help="random codes, without --codes")
    parser.add_argument("--bits", type=int, default=64, help="code length of --uniform")
    parser.add_argument("--n-queries", type=int, default=1000, help="random queries of --uniform")
    parser.add_argument("--mmap", action="store_true", help="search the codes memory-mapped in place")
    parser.add_argument("--substrings", type=int, help="tables (default: the library's rule)")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, help="work a query may spend before it gives up (default: none)")
    args = parser.parse_args()
    if bool(args.codes) != bool(args.queries):
        parser.error("--codes and --queries go together")
    kernels = load_copies(parser, args.kernels)
    names = [name for name, _ in kernels]
    from sortedhash.neighbors._kernels import knn_search

    words, query_words, n_bits = codes_and_queries(args)
    first = kernels[0][1]
    m = args.substrings or first.auto_n_substrings(words.shape[1], n_bits)
    start = time.perf_counter()
    index = first.build_multi_index(np.ascontiguousarray(words), n_bits, m)
    # Each copy searches tables it built itself: their layout may differ.
    indexes = {names[0]: index} | {name: module.build_multi_index(np.ascontiguousarray(words), n_bits, m)
                                   for name, (_, module) in zip(names[1:], kernels[1:])}
    print(f"N={words.shape[1]:,} bits={n_bits} m={m} (tables built in {time.perf_counter() - start:.1f} s); "
          f"{len(query_words)} queries, one thread, q/s best of {args.repeats}", flush=True)
    for k in args.k:
        best, results, work = {}, {}, {}
        for name, module in kernels:
            module.mih_knn(words, indexes[name], query_words[:4], k, n_threads=1)  # compile
        for _ in range(args.repeats):
            for name, module in kernels:
                start = time.perf_counter()
                dist, ind, spent = module.mih_knn(words, indexes[name], query_words, k, budget=args.budget,
                                                  n_threads=1)
                best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
                results[name], work[name] = (dist, ind, spent >= 0), spent[spent >= 0].mean() if np.any(spent >= 0) else 0
        answered = results[names[0]][2]
        same = all(np.array_equal(a, answered) for _, _, a in results.values())
        same = same and all(np.array_equal(d[answered], results[names[0]][0][answered])
                            and np.array_equal(i[answered], results[names[0]][1][answered]) for d, i, _ in results.values())
        cells = "  ".join(f"{name} {len(query_words) / best[name]:8.0f} (work {work[name]:,.0f}"
                          + (f", given up {np.sum(~results[name][2])}" if args.budget else "") + ")" for name in names)
        print(f"k={k:>4} | {cells} | same results: {same}", flush=True)
        if args.budget:  # the work of the queries answered says nothing of the scan's cost per unit
            continue
        for some in (4, 16):  # compile both scan kernels: one query at a time, and 16 a vector
            knn_search(words, query_words[:some], k, n_bits, n_threads=1)
        scan = min(timed(lambda: knn_search(words, query_words, k, n_bits, n_threads=1)) for _ in range(args.repeats))
        per_work = words.shape[1] * len(query_words) / scan * best[names[0]] / (work[names[0]] * len(query_words))
        print(f"       scan {len(query_words) / scan:8.0f} q/s; scan codes per {names[0]} work unit: {per_work:.0f}",
              flush=True)


if __name__ == "__main__":
    main()
