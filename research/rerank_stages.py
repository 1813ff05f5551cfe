"""Where a two-stage query's time goes: the Hamming stage, the middle stage, the re-ranking.

For tuning ``RerankedNeighbors``: on random float32 rows (binary quantization, one thread),
times through the public API, each best of ``--repeats``:

- the Hamming stage: ``search.index_.kneighbors`` of the queries' codes, ``n_candidates``
  neighbours (also at ``--k-hamming``, to see how it grows with k);
- the whole search re-ranking every candidate, and re-ranking ``n_reranked`` of them.

From these: re-ranking all costs ``whole(all) - hamming``, a row ``/ n_candidates``; the
middle stage costs ``whole(m) - hamming - m`` rows. Random rows are nobody's data (the
recall here means nothing), but they cost what real rows cost to read.

Run: ``python research/rerank_stages.py --candidates 1000 --reranked 200``.
"""

import argparse
import time

import numpy as np


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    from sortedhash import BinaryQuantizer, RerankedNeighbors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--reranked", type=int, nargs="+", default=[200])
    parser.add_argument("--k-hamming", type=int, nargs="*", default=[1, 100, 300])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.features), dtype=np.float32)
    search = RerankedNeighbors(BinaryQuantizer(), n_neighbors=10, n_candidates=args.candidates, n_jobs=1).fit(X)
    codes = search.hasher_.transform(queries)
    us = 1e6 / args.queries  # seconds of all the queries -> microseconds a query
    print(f"{args.rows} x {args.features} random float32 rows, {args.features}-bit binary quantization, "
          f"{args.queries} queries, one thread, best of {args.repeats}; microseconds a query", flush=True)
    for k in [*args.k_hamming, args.candidates]:
        search.index_.kneighbors(codes[:32], k)  # load the kernels
        hamming = best_time(lambda: search.index_.kneighbors(codes, k, return_distance=False), args.repeats) * us
        print(f"Hamming stage, k = {k}: {hamming:.0f}", flush=True)
    settings = [None] + [m for m in args.reranked if 10 <= m < args.candidates]
    whole = {}
    for m in settings:
        search.set_params(n_reranked=m)
        search.kneighbors(queries[:32])
        whole[m] = best_time(lambda: search.kneighbors(queries, return_distance=False), args.repeats) * us
    per_row = (whole[None] - hamming) / args.candidates
    print(f"whole search, all {args.candidates} re-ranked: {whole[None]:.0f} (re-ranking "
          f"{whole[None] - hamming:.0f}, {per_row * 1e3:.0f} ns a row)")
    for m in settings[1:]:
        middle = whole[m] - hamming - m * per_row
        print(f"whole search, {m} re-ranked: {whole[m]:.0f} "
              f"(middle stage ~{middle:.0f}, re-ranking ~{m * per_row:.0f})")


if __name__ == "__main__":
    main()
