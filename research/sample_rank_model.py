"""A model of the lane scan's sampled start threshold: rows offered against lanes rescanned.

The lane scan (``sortedhash/neighbors/_kernels.py``, ``_knn_lanes``) starts each query's
threshold at the r-th smallest distance over a sample of the database (64 runs of rows
spread over it, one row in ``stride``) and rescans a query whose threshold kept fewer than k
rows. This script replays that rule exactly, one query at a time in row order, on random
codes, and prints for each stride and rank: the rows each query offers to its top k in the
sample and in the scan (each offer is scalar work: ~12 ns at 1M x 64 bits on an AMD EPYC
Zen 5), the share of queries that come up short (each rescans its group of sixteen), and a
cost model in microseconds a query from the figures given (``--bound-us``, ``--offer-ns``).

``--ties`` also replays a finer start: the threshold as a (distance, row) pair, the row
being where the sample's count last tightened, so that rows at the threshold's distance
after it are refused (the rows tied at the sampled distance are many at 64 bits).

Run: ``python research/sample_rank_model.py --rows 1000000 --bits 64 --k 100 --queries 3000``.
"""

import argparse

import numba
import numpy as np

SAMPLE_RUNS = 64  # as _kernels._SAMPLE_CHUNKS
SCAN_ROWS = 16  # as _lanes.SCAN_ROWS


def sample_rows(n_rows, stride):
    """Row numbers of the sample: ``SAMPLE_RUNS`` runs of whole steps, evenly spread (the
    layout of ``_kernels._sample_layout`` for stride 32)."""
    scanned = n_rows - n_rows % SCAN_ROWS
    spacing = scanned // SAMPLE_RUNS // SCAN_ROWS * SCAN_ROWS
    run = max(SCAN_ROWS, spacing // stride // SCAN_ROWS * SCAN_ROWS)
    return np.concatenate([np.arange(c * spacing, c * spacing + run) for c in range(SAMPLE_RUNS)])


@numba.njit
def offer_in_order(dist, rows, k, start):
    """The kernel's rule over ``rows`` in order: a row under the threshold is offered; once
    k are under it, it drops to the k-th distance. Returns (final threshold, rows offered,
    row of the last drop, -1 if none)."""
    hist = np.zeros(max(start, dist.max()) + 2, np.int64)
    below, t, offered, drop = 0, start, 0, -1
    for row in rows:
        d = dist[row]
        if d >= t:
            continue
        offered += 1
        hist[d] += 1
        below += 1
        if below >= k:
            while below >= k:
                t -= 1
                below -= hist[t]
            drop = row
    return t, offered, drop


def replay(db, queries, sample, rank, k, ties=False):
    """(n_queries, 3): for each query, the rows offered in the sample and in the scan, and
    whether it comes up short (fewer than k rows within the start threshold)."""
    n_bits = 64 * db.shape[1]
    every = np.arange(db.shape[0])
    out = np.zeros((len(queries), 3), np.int64)
    for q, query in enumerate(queries):
        dist = np.bitwise_count(db ^ query).sum(axis=1, dtype=np.int64)
        t, in_sample, drop = offer_in_order(dist, sample, rank, n_bits + 1)
        if ties and drop >= 0:  # rows at distance t after the drop row are refused
            dist[drop + 1:][dist[drop + 1:] == t] = n_bits + 1
        _, in_scan, _ = offer_in_order(dist, every, k, t + 1)
        out[q] = in_sample, in_scan, np.count_nonzero(dist <= t) < k
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--strides", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--ranks", type=int, nargs="+", default=list(range(4, 12)))
    parser.add_argument("--ties", action="store_true", help="also the (distance, row) start threshold")
    parser.add_argument("--bound-us", type=float, default=25.3, help="the popcount pass, us a query")
    parser.add_argument("--offer-ns", type=float, default=12.0, help="an offered row, ns")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    db = rng.integers(0, 2**64, (args.rows, args.bits // 64), dtype=np.uint64)
    queries = rng.integers(0, 2**64, (args.queries, args.bits // 64), dtype=np.uint64)
    print(f"{args.rows} random {args.bits}-bit codes, k = {args.k}, {args.queries} queries; cost a query = bound x "
          f"(1 + sample share) + offers x {args.offer_ns} ns + bound x P(one of its group of 16 is short)")
    for stride in args.strides:
        sample = sample_rows(args.rows, stride)
        for ties in (False, True) if args.ties else (False,):
            for rank in args.ranks:
                out = replay(db, queries, sample, rank, args.k, ties)
                offered = out[:, :2].mean(axis=0)
                short = out[:, 2].mean()
                cost = (args.bound_us * (1 + len(sample) / args.rows) + args.offer_ns * offered.sum() / 1000
                        + min(1.0, 16 * short) * args.bound_us)
                print(f"stride {stride:3d} rank {rank:3d}{' ties' if ties else '     '} | offered: sample "
                      f"{offered[0]:6.1f} scan {offered[1]:6.1f} | short {short:.4f} | model {cost:6.2f} us",
                      flush=True)


if __name__ == "__main__":
    main()
