"""Dask overhead: encoding and exact search on a cluster against one process, at equal cores.

Feature rows are generated chunk by chunk from seeded generators (``--n-features``
standard-normal float32 columns; the same rows on both paths, never all held anywhere):
10M x 384 floats would be 15 GB. An ``NSHTransformer`` of ``--n-bits`` bits, fitted on the
first chunk, encodes them:

- in one process: ``transform`` chunk by chunk with ``--workers x --threads-per-worker``
  torch threads, then ``HammingNeighbors(n_jobs=same)`` fitted on all codes and queried;
- on a cluster (a ``LocalCluster`` of ``--workers`` processes of ``--threads-per-worker``
  threads, or ``--scheduler tcp://...``): ``sortedhash.dask.encode`` persisted on the
  workers, ``DaskHammingNeighbors`` fitted on those codes (one shard per thread, or
  ``--shard-rows``) and queried.

Search runs twice on each side: ``algorithm="brute"`` (a scan: sharding changes nothing, so
its ratio is the engine's overhead) and ``"auto"`` (multi-index hashing on these codes:
sublinear, so shards of N/2 cost more than one index of N, engine or not).

``--n-queries`` queries (rows of another seed, encoded), k = ``--k``. Prints the time of
each stage, the ratio cluster / one process (the engine's overhead: goal <= 1.3), that both
paths give identical codes and neighbours, and the peak RSS of the client process during
each path (goal: the client never holds the features or all codes).

Run: ``python benchmarks/dask_scale.py [--n-rows 10000000] [--chunk-rows 500000]
[--workers 2 --threads-per-worker 1 | --scheduler tcp://host:8786]``
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

# The scan costs the same however the codes are sharded, so its ratio is the engine's
# overhead; multi-index hashing ("auto" picks it for these codes) is sublinear, so two
# shards of N/2 cost more than one of N whatever the engine.
ALGORITHMS = ("brute", "auto")


def peak_rss_mb():
    """Peak resident memory of this process since the last reset_peak_rss()."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss():
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM
    except OSError:
        pass


def features(chunk_index, rows, n_features, seed=0):
    """Rows of chunk ``chunk_index``: the same on any process."""
    return np.random.default_rng([seed, chunk_index]).standard_normal((rows, n_features), dtype=np.float32)


def chunk_sizes(n_rows, chunk_rows):
    sizes = [chunk_rows] * (n_rows // chunk_rows)
    return sizes + ([n_rows % chunk_rows] if n_rows % chunk_rows else [])


def in_process(model, sizes, n_features, queries, k, cores):
    import torch

    from sortedhash import HammingNeighbors

    torch.set_num_threads(cores)
    times = {}
    start = time.perf_counter()
    codes = np.empty((sum(sizes), model.n_bytes_), dtype=np.uint8)
    row = 0
    for i, rows in enumerate(sizes):
        codes[row:row + rows] = model.transform(features(i, rows, n_features))
        row += rows
    times["encode"] = time.perf_counter() - start
    results = time_searches(lambda algorithm: HammingNeighbors(algorithm=algorithm, n_jobs=cores).fit(codes),
                            queries, k, times)
    return times, codes, results


def time_searches(fit_index, queries, k, times):
    """Fit an index with each algorithm and search it, recording both times in ``times``."""
    results = {}
    for algorithm in ALGORITHMS:
        start = time.perf_counter()
        index = fit_index(algorithm)
        times[f"fit {algorithm}"] = time.perf_counter() - start
        start = time.perf_counter()
        results[algorithm] = index.kneighbors(queries, k)
        times[f"search {algorithm}"] = time.perf_counter() - start
        del index
    return results


def on_cluster(client, model, sizes, n_features, queries, k, shard_rows):
    import dask
    import dask.array as da
    from distributed import wait

    from sortedhash.dask import DaskHammingNeighbors, encode

    blocks = [da.from_delayed(dask.delayed(features, pure=True)(i, rows, n_features), shape=(rows, n_features),
                              dtype=np.float32) for i, rows in enumerate(sizes)]
    X = da.concatenate(blocks)
    times = {}
    start = time.perf_counter()
    codes = encode(model, X).persist()
    wait(codes)
    times["encode"] = time.perf_counter() - start
    # Multi-index hashing is sublinear: a few large shards (one per thread) search faster
    # than many small ones.
    shards = codes.rechunk((shard_rows, -1))
    results = time_searches(lambda algorithm: DaskHammingNeighbors(algorithm=algorithm).fit(shards), queries, k,
                            times)
    return times, codes, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=10_000_000)
    parser.add_argument("--n-features", type=int, default=384)
    parser.add_argument("--n-bits", type=int, default=64)
    parser.add_argument("--chunk-rows", type=int, default=250_000, help="rows encoded at once")
    parser.add_argument("--shard-rows", type=int, default=None,
                        help="codes of each search shard (default: the codes split evenly over the threads)")
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--scheduler", default=None, help="address of a running scheduler (tcp://host:8786)")
    parser.add_argument("--fit-epochs", type=int, default=2, help="epochs of the model's fit (on the first chunk)")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from sortedhash import NSHTransformer

    sizes = chunk_sizes(args.n_rows, args.chunk_rows)
    model = NSHTransformer(n_bits=args.n_bits, max_epochs=args.fit_epochs, random_state=0, device="cpu")
    model.fit(features(0, min(args.chunk_rows, 50_000), args.n_features))
    queries = model.transform(features(0, args.n_queries, args.n_features, seed=1))
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    print(f"# {args.n_rows:,} rows x {args.n_features} features -> {args.n_bits}-bit codes, {len(sizes)} chunks "
          f"of {args.chunk_rows:,}; {args.n_queries} queries, k={args.k}; {platform.processor() or platform.machine()}"
          f" {os.cpu_count()} cores, {'+'.join(f for f in ('avx2', 'avx512_vpopcntdq') if f in flags)}")

    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    cores = sum(client.nthreads().values())
    print(f"# cluster: {len(client.nthreads())} workers, {cores} threads in all; one process: {cores} threads; "
          f"search shards of {args.shard_rows or -(-args.n_rows // cores):,} codes")
    # Warm-up: workers import torch and compile (or load) the search kernels, as a service's would.
    warm_codes = model.transform(features(0, 20_000, args.n_features, seed=2))
    from sortedhash import HammingNeighbors
    from sortedhash.dask import DaskHammingNeighbors

    HammingNeighbors().fit(warm_codes).kneighbors(queries[:10])
    DaskHammingNeighbors().fit(np.concatenate([warm_codes] * 10)).kneighbors(queries[:10])
    client.run(lambda: HammingNeighbors().fit(warm_codes).kneighbors(queries[:10]) and None)

    reset_peak_rss()
    base_rss = peak_rss_mb()
    shard_rows = args.shard_rows or -(-args.n_rows // cores)
    cluster_times, codes, cluster_results = on_cluster(client, model, sizes, args.n_features, queries, args.k,
                                                             shard_rows)
    cluster_rss = peak_rss_mb()
    codes_on_cluster = codes.compute()
    del codes
    client.close()
    if cluster is not None:
        cluster.close()

    reset_peak_rss()
    local_times, local_codes, local_results = in_process(model, sizes, args.n_features, queries, args.k, cores)
    local_rss = peak_rss_mb()

    differing = np.bitwise_count(codes_on_cluster ^ local_codes).sum(axis=1)
    same_neighbors = all(np.array_equal(a, b) for algorithm in ALGORITHMS
                         for a, b in zip(cluster_results[algorithm], local_results[algorithm]))
    print(f"{'stage':<14} {'one process s':>14} {'cluster s':>10} {'cluster / one':>14}")
    for stage in local_times:
        print(f"{stage:<14} {local_times[stage]:>14.2f} {cluster_times[stage]:>10.2f} "
              f"{cluster_times[stage] / local_times[stage]:>14.2f}")
    for algorithm in ALGORITHMS:
        stages = ("encode", f"fit {algorithm}", f"search {algorithm}")
        total_local, total_cluster = (sum(times[s] for s in stages) for times in (local_times, cluster_times))
        print(f"{'total ' + algorithm:<14} {total_local:>14.2f} {total_cluster:>10.2f} "
              f"{total_cluster / total_local:>14.2f}")
    # Exact equality needs the same BLAS threading set-up on both sides: workers start with
    # OMP_NUM_THREADS=1 (the nanny's default), and a code whose projection is within float
    # rounding of 0 can then get the other bit.
    print(f"codes differing: {np.count_nonzero(differing)} of {len(differing):,} rows ({differing.sum()} bits); "
          f"identical neighbours: {same_neighbors}")
    features_mb = args.n_rows * args.n_features * 4 / 2**20
    codes_mb = args.n_rows * model.n_bytes_ / 2**20
    print(f"peak RSS of the client: cluster path {cluster_rss:,.0f} MB (at start {base_rss:,.0f}), one process "
          f"{local_rss:,.0f} MB; features {features_mb:,.0f} MB, codes {codes_mb:,.0f} MB")


if __name__ == "__main__":
    main()
