"""Do copies of the same codes scan at the same speed?

Several ``HammingNeighbors(algorithm="brute")`` fitted on one writeable array each keep a
copy of it; fitted on a read-only array they all search that one array. This times a few
queries a call (``--per-call``) through each estimator, in alternated rounds, and prints
each one's median microseconds a query, for copies and then for the shared array: where the
copies' times differ beyond the shared array's, a comparison of two estimators fitted on
their own copies measures where their memory fell as well as their method (what
``research/per_call_ab.py`` and ``benchmarks/search_scale.py`` avoid by fitting on a
read-only array).

Run: ``python research/copy_speed.py [--rows 1000000] [--estimators 5] [--per-call 4]``.
"""

import argparse
import time

import numpy as np

from sortedhash import HammingNeighbors


def median_times(estimators, queries, per_call, rounds):
    """Median microseconds a query of each estimator over alternated rounds."""
    times = [[] for _ in estimators]
    for _ in range(rounds):
        for estimator, t in zip(estimators, times):
            start = time.perf_counter()
            for i in range(0, len(queries), per_call):
                estimator.kneighbors(queries[i:i + per_call])
            t.append((time.perf_counter() - start) / len(queries) * 1e6)
    return [float(np.median(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bytes", type=int, default=8, help="bytes a code")
    parser.add_argument("--estimators", type=int, default=5)
    parser.add_argument("--queries", type=int, default=96)
    parser.add_argument("--per-call", type=int, default=4)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (args.rows, args.bytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (args.queries, args.bytes), dtype=np.uint8)
    shared = codes.copy()
    shared.flags.writeable = False
    print(f"{args.rows:,} codes of {8 * args.bytes} bits, k = {args.k}, {args.per_call} queries a call, "
          f"us a query (median of {args.rounds} alternated rounds)")
    for name, database in (("copies", codes), ("shared", shared)):
        estimators = [HammingNeighbors(n_neighbors=args.k, algorithm="brute", n_jobs=1).fit(database)
                      for _ in range(args.estimators)]
        for estimator in estimators:  # compile or load the kernels first
            estimator.kneighbors(queries[:args.per_call])
        times = median_times(estimators, queries, args.per_call, args.rounds)
        spread = max(times) / min(times)
        print(f"{name:7s} | " + " ".join(f"{t:7.1f}" for t in times) + f" | slowest / fastest {spread:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
