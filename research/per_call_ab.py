"""`algorithm="auto"` against the better of MIH and the scan, a few queries a call.

The same search as ``benchmarks/search_scale.py --per-call N``, timed so that two versions
of the library can be compared on a noisy host: the three estimators (``auto``, ``brute``,
``mih``) answer the same queries, N a call, in alternated rounds (``--rounds``), and each
one's median round counts. Prints microseconds a query and auto ÷ the better of the other
two for each kind of codes and k.

Codes: the learned codes ``benchmarks/search_scale.py`` caches in its ``--workdir``
(``--codes`` and ``--queries``), uniform random codes of the same shape, and (``--kinds
clustered``) codes between the two: 20,000 random centres, each copied N / 20,000 times with
each bit flipped at rate p (one database for each p of ``--flip``), the queries fresh copies.

Two versions: run it once per checkout, e.g.
``git worktree add /tmp/base REV`` and ``PYTHONPATH=/tmp/base python research/per_call_ab.py ...``
against ``python research/per_call_ab.py ...``, alternately.

Run: ``python research/per_call_ab.py --codes DIR/learned_newsgroups_64_50_1000000_5.0.npy
--queries DIR/learned_newsgroups_64_50_1000000_5.0.queries.npy --per-call 1 4 12``.
"""

import argparse
import time

import numpy as np

import sortedhash
from sortedhash import HammingNeighbors


def per_query_times(estimators, queries, per_call, rounds):
    """Median seconds a query of each estimator over ``rounds`` alternated rounds, each
    round after an untimed call of its own: the estimators share one array of codes, so the
    one timed right after another scan would otherwise find the codes in the cache, and the
    one after MIH (whose tables push them out) would not."""
    times = {name: [] for name in estimators}
    for _ in range(rounds):
        for name, estimator in estimators.items():
            estimator.kneighbors(queries[:per_call])
            start = time.perf_counter()
            for i in range(0, len(queries), per_call):
                estimator.kneighbors(queries[i:i + per_call])
            times[name].append((time.perf_counter() - start) / len(queries))
    return {name: float(np.median(t)) for name, t in times.items()}


def clustered(shape, n_queries, p, rng, n_centres=20_000):
    """Copies of random centres with each bit flipped at rate ``p``: ``shape[0]`` codes
    (each centre's copies together) and ``n_queries`` fresh copies of random centres."""
    n_rows, n_bytes = shape
    n_centres = min(n_centres, n_rows)
    centres = rng.integers(0, 2, (n_centres, 8 * n_bytes), dtype=np.uint8)

    def copies(which):
        return np.packbits(centres[which] ^ (rng.random((len(which), 8 * n_bytes)) < p), axis=1)

    return copies(np.arange(n_rows) * n_centres // n_rows), copies(rng.integers(0, n_centres, n_queries))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", required=True, help="packed uint8 codes (.npy)")
    parser.add_argument("--queries", required=True, help="packed uint8 queries (.npy)")
    parser.add_argument("--n-queries", type=int, default=96)
    parser.add_argument("--per-call", type=int, nargs="+", default=[1, 4, 12])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kinds", nargs="+", default=["learned", "uniform"],
                        choices=["learned", "uniform", "clustered"])
    parser.add_argument("--flip", type=float, nargs="+", default=[0.05, 0.1, 0.15],
                        help="bit-flip rates of the clustered codes")
    args = parser.parse_args()

    learned = np.load(args.codes)
    rng = np.random.default_rng(0)
    kinds = {
        "learned": lambda: (learned, np.load(args.queries)[: args.n_queries]),
        "uniform": lambda: (rng.integers(0, 256, learned.shape, dtype=np.uint8),
                            rng.integers(0, 256, (args.n_queries, learned.shape[1]), dtype=np.uint8)),
    }
    for p in args.flip:
        kinds[f"flip{p}"] = lambda p=p: clustered(learned.shape, args.n_queries, p, rng)
    names = [n for kind in args.kinds for n in ([f"flip{p}" for p in args.flip] if kind == "clustered" else [kind])]
    print(f"sortedhash from {sortedhash.__file__}; {len(learned):,} codes of {8 * learned.shape[1]} bits, "
          f"{args.n_queries} queries, median of {args.rounds} rounds")
    for name in names:
        db, queries = kinds[name]()
        # Read-only, so that the three estimators search one array in place: copies of the
        # same codes scan up to 1.22x apart (1M 64-bit codes, AMD EPYC Zen 5;
        # research/copy_speed.py), which would read as a difference between the methods.
        db.flags.writeable = False
        for k in args.k:
            estimators = {a: HammingNeighbors(n_neighbors=k, algorithm=a, n_jobs=1).fit(db)
                          for a in ("auto", "brute", "mih")}
            for estimator in estimators.values():  # compile or load every kernel they take
                estimator.kneighbors(queries[:32])
                estimator.kneighbors(queries[:1])
            for per_call in args.per_call:
                t = per_query_times(estimators, queries, per_call, args.rounds)
                best = min(t["brute"], t["mih"])
                print(f"{name:8s} k={k:<4d} {per_call:3d} a call | us a query: auto {t['auto'] * 1e6:7.1f} "
                      f"brute {t['brute'] * 1e6:7.1f} mih {t['mih'] * 1e6:7.1f} | auto / best {best / t['auto']:.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
