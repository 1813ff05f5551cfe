"""Encode and search 10 million rows in bounded memory, with measured peak memory.

Writes N x d float32 features to a memory-mapped file under --workdir (chunk by chunk),
fits NSHTransformer on a small sample, encodes all N rows (transform works in batches),
fits HammingNeighbors on the N codes and runs k-NN and radius queries (blocked kernels,
chunked distances). For each step it prints the wall time, the peak of numpy allocations
during the step (tracemalloc) and the process's peak RSS so far. No step holds an
n x N distance matrix or the unpacked bits of the database: compare the peaks with the
sizes printed at the top.

Run: ``python benchmarks/scale.py --workdir /tmp/sortedhash-scale [--rows 10000000]``.
"""

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np

from sortedhash import HammingNeighbors, NSHTransformer


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(name, fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:<42} {elapsed:8.1f} s   numpy peak {peak / 2**20:8.1f} MiB   max RSS {rss_mb():8.0f} MiB",
          flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="where the memory-mapped features go")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--bits", type=int, default=64)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    n, d = args.rows, args.features
    path = os.path.join(args.workdir, f"features_{n}x{d}.f32")
    print(f"N={n:,} d={d} bits={args.bits}: features {n * d * 4 / 2**30:.2f} GiB on disk, codes "
          f"{n * args.bits / 8 / 2**20:.0f} MiB, unpacked bits would be {n * args.bits / 2**30:.2f} GiB, "
          f"one 100 x N distance matrix {100 * n * 2 / 2**30:.2f} GiB (uint16)")

    def write():
        X = np.lib.format.open_memmap(path + ".npy", mode="w+", dtype=np.float32, shape=(n, d))
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((64, d)).astype(np.float32)
        for s in range(0, n, 1_000_000):
            e = min(s + 1_000_000, n)
            labels = rng.integers(0, 64, e - s)
            X[s:e] = centres[labels] + 0.5 * rng.standard_normal((e - s, d), dtype=np.float32)
        X.flush()

    step("write memory-mapped features", write)
    X = np.load(path + ".npy", mmap_mode="r")
    model = step("fit NSHTransformer on 20,000 rows", lambda: NSHTransformer(
        n_bits=args.bits, max_epochs=2, random_state=0).fit(np.asarray(X[:20_000])))
    codes = step(f"transform all {n:,} rows", lambda: model.transform(X))
    nn = step("HammingNeighbors.fit", lambda: HammingNeighbors(n_neighbors=100, n_jobs=-1).fit(codes))
    queries = codes[:100]
    step("kneighbors: 100 queries, k=100", lambda: nn.kneighbors(queries))
    step("radius_neighbors: 10 queries, radius=4", lambda: nn.radius_neighbors(queries[:10], radius=4))
    os.remove(path + ".npy")


if __name__ == "__main__":
    main()
