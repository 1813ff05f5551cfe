"""Two-stage search at scale: learned codes + exact re-ranking against faiss, in one run.

The database: the dataset's real training features, standardised and L2-normalised (so
inner product is cosine), enlarged to ``--rows`` rows, normalised again, in one of two ways
(``--enlarge``): ``noise`` (the default), each added row a real row drawn at random plus
Gaussian noise of ``--noise`` times the features' mean per-dimension standard deviation;
``mix``, each added row a random point between a random real row and one of its 10 nearest
real rows. Noisy copies put each real row in a cloud of ~N/n copies that differ only by
isotropic noise, so a query's top 10 is decided by that noise; mixes add rows along the
real data. The script prints the cosine of the 10th neighbour (median over queries) in the
real rows alone and in the enlarged database, so the reader sees how the added rows change
the neighbourhoods. Queries: the dataset's test queries, through the same standardisation.

Methods, each timed on the same queries with one thread (HNSW's build uses every core), the
fastest of ``--repeats`` runs, with recall@10 of the exact top-10 (from the exact search):

- exact float search, faiss ``IndexFlatIP`` (the reference for q/s: timed first and again
  last, the faster of the two counts);
- faiss ``IndexHNSWFlat`` (M=32), several ``efSearch``;
- binary quantization (faiss ``IndexLSH`` without rotation: one sign bit per dimension,
  thresholds trained) re-ranked by ``IndexRefineFlat``, several ``k_factor``;
- sortedhash two-stage search: ``RerankedNeighbors`` over binary quantization's codes
  (``BinaryQuantizer``: one bit a dimension, set at or above the dimension's mean; faiss
  thresholds at the median) and over
  the codes of an NSHTransformer fitted on the real training rows (``--bits``), several
  ``n_candidates``, and with ``--reranked``, the same re-ranking only ``n_reranked`` of them
  (those whose codes score best against the query's unbinarised scores).

Then, per method, the fastest setting reaching ``--target`` recall, and its q/s against
exact search.

Exact search is a matrix product in faiss's own OpenBLAS. Where that OpenBLAS takes the CPU
for an old one (0.3.15, in faiss-cpu 1.15.1's wheel, reads an Ice Lake Xeon of model 106 in a
VM as a Prescott) it runs its generic kernel and exact search ~7x slower than it can (18
against 130 q/s there), which would flatter every ratio; the script then runs itself again
with ``OPENBLAS_CORETYPE`` set for the CPU's widest vectors, and says so.

Run: ``python benchmarks/rerank_speed.py newsgroups --data PATH --cache DIR [--rows 1000000]``
(``digits`` runs without data, for a smoke test).
"""

import argparse
import importlib.util
import os
import pathlib
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent


def _retrieval():
    spec = importlib.util.spec_from_file_location("retrieval", ROOT / "retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# OpenBLAS cores without AVX2: on a CPU with it, a sign that OpenBLAS did not know the CPU.
_OLD_BLAS_CORES = {"Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Core2", "Penryn", "Dunnington",
                   "Nehalem", "Atom", "Sandybridge"}


def core_to_force(blas_cores, cpu_flags):
    """The ``OPENBLAS_CORETYPE`` to run with when an OpenBLAS in the process reports one of
    ``blas_cores`` without AVX2 on a CPU whose ``cpu_flags`` have it (None otherwise)."""
    if not set(blas_cores) & _OLD_BLAS_CORES:
        return None
    return "SkylakeX" if "avx512f" in cpu_flags else "Haswell" if "avx2" in cpu_flags else None


def blas_at_its_best():
    """Run this script again with ``OPENBLAS_CORETYPE`` set when faiss's OpenBLAS took this
    CPU for one without AVX2 (see the module's docstring); otherwise return."""
    import threadpoolctl

    if "OPENBLAS_CORETYPE" in os.environ:
        return
    cores = {info.get("architecture") for info in threadpoolctl.threadpool_info() if info["internal_api"] == "openblas"}
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    core = core_to_force(cores, set(cpuinfo.read_text().split()) if cpuinfo.exists() else set())
    if core:
        print(f"OpenBLAS took this CPU for {'/'.join(sorted(cores & _OLD_BLAS_CORES))}: running again with "
              f"OPENBLAS_CORETYPE={core}", flush=True)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "OPENBLAS_CORETYPE": core})


def unit(X):
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def enlarge(real, rows, noise, seed=0, how="noise"):
    """``real`` followed by ``rows - len(real)`` made-up rows, renormalised.

    ``how="noise"``: a random real row plus Gaussian noise of ``noise`` times the features'
    mean per-dimension standard deviation. ``how="mix"``: a random point on the segment from
    a random real row to one of its 10 nearest real rows (``lam * a + (1 - lam) * b``, ``lam``
    uniform), so the added rows lie between real neighbours instead of in a cloud of noise
    around each real row.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((rows, real.shape[1]), dtype=np.float32)
    out[:len(real)] = real
    scale = noise * real.std(axis=0).mean()
    if how == "mix":
        import faiss

        index = faiss.IndexFlatIP(real.shape[1])
        index.add(real)
        neighbours = index.search(real, 11)[1][:, 1:]
    for start in range(len(real), rows, 100_000):
        stop = min(start + 100_000, rows)
        first = rng.integers(0, len(real), stop - start)
        if how == "mix":
            second = neighbours[first, rng.integers(0, neighbours.shape[1], stop - start)]
            lam = rng.uniform(0, 1, (stop - start, 1)).astype(np.float32)
            block = lam * real[first] + (1 - lam) * real[second]
        else:
            block = real[first] + scale * rng.standard_normal((stop - start, real.shape[1]), dtype=np.float32)
        out[start:stop] = unit(block)
    return out


def timed(fn, repeats=1):
    """(seconds of the fastest of ``repeats`` calls of ``fn``, its result)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def recall_at_10(found, truth):
    return float(np.mean([len(set(a[:10]) & set(b)) / 10 for a, b in zip(found, truth)]))


def write_outputs(rows, out, title):
    """rows.csv and a plot of q/s against recall@10, one line per method."""
    import csv

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rows.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "setting", "qps", "recall_at_10"])
        writer.writerows(rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        ax.plot([r[3] for r in mine], [r[2] for r in mine], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(os.path.join(out, "recall_qps.png"), dpi=110, bbox_inches="tight")


def main():
    import faiss
    from sklearn.frozen import FrozenEstimator

    from sortedhash import BinaryQuantizer, NSHTransformer, RerankedNeighbors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["digits", "newsgroups", "cifar10"])
    parser.add_argument("--data")
    parser.add_argument("--cache")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--enlarge", choices=["noise", "mix"], default="noise",
                        help="how the added rows are made (see enlarge)")
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--bits", type=int, nargs="*", default=[64, 128],
                        help="NSH code lengths; none (a bare --bits) fits no NSH model")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--nsh-params", default="", help="NSHTransformer parameters, e.g. neighbor_weight=1")
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 300, 1000, 3000])
    parser.add_argument("--reranked", type=int, nargs="*", default=[],
                        help="also re-rank only this many of each setting's candidates (n_reranked), the "
                             "best by the query's scores against their codes")
    parser.add_argument("--ef-search", type=int, nargs="*", default=[16, 32, 64, 128, 256],
                        help="HNSW efSearch values; none (a bare --ef-search) builds no HNSW index")
    parser.add_argument("--k-factors", type=int, nargs="+", default=[10, 30, 100, 300])
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=3,
                        help="each search timed this many times, the fastest counts (every method alike: one "
                             "timed run varied by up to ~30 %% on the machines measured)")
    parser.add_argument("--out", help="folder for rows.csv and recall_qps.png")
    parser.add_argument("--database-size", type=int, default=50000)
    parser.add_argument("--train-size", type=int, default=10000)
    args = parser.parse_args()
    args.views = 0
    blas_at_its_best()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    retrieval = _retrieval()

    _, _, train, query, db = retrieval.load_standardised(args)
    real, queries = unit(db), unit(query[: args.queries])
    base = enlarge(real, max(args.rows, len(real)), args.noise, how=args.enlarge)
    d = base.shape[1]
    how = f"noise {args.noise}" if args.enlarge == "noise" else "mixes of real neighbours"
    print(f"{args.dataset}: {len(real)} real rows enlarged to {len(base)} x {d} ({how}), "
          f"{len(queries)} queries, one thread, best of {args.repeats}, faiss {faiss.__version__}", flush=True)

    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    def exact_search():
        """(q/s, result, CPU seconds a wall second: ~1 on one thread) of the exact search."""
        cpu, wall = time.process_time(), time.perf_counter()
        t, out = timed(lambda: flat.search(queries, 10), args.repeats)
        return len(queries) / t, out, (time.process_time() - cpu) / (time.perf_counter() - wall)

    exact_qps, (_, truth), start_cpu = exact_search()
    real_index = faiss.IndexFlatIP(d)
    real_index.add(real)
    tenth_real = np.median(real_index.search(queries, 10)[0][:, -1])
    tenth_all = np.median(flat.search(queries, 10)[0][:, -1])
    print(f"median cosine of the 10th neighbour: real rows {tenth_real:.3f}, enlarged {tenth_all:.3f}")
    rows = [("exact float (IndexFlatIP)", "", exact_qps, 1.0)]

    if args.ef_search:
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        faiss.omp_set_num_threads(os.cpu_count())  # the build is not compared: use every core
        t_build, _ = timed(lambda: hnsw.add(base))
        faiss.omp_set_num_threads(1)
        print(f"HNSW built in {t_build:.0f} s ({os.cpu_count()} threads)", flush=True)
        for ef in args.ef_search:
            hnsw.hnsw.efSearch = ef
            t, (_, found) = timed(lambda: hnsw.search(queries, 10), args.repeats)
            rows.append(("HNSW (M=32)", f"efSearch={ef}", len(queries) / t, recall_at_10(found, truth)))
        del hnsw

    bq = faiss.IndexRefineFlat(faiss.IndexLSH(d, d, False, True))
    bq.train(base)
    bq.add(base)
    for factor in args.k_factors:
        bq.k_factor = factor
        t, (_, found) = timed(lambda: bq.search(queries, 10), args.repeats)
        rows.append((f"binary quantization {d} bits + IndexRefineFlat", f"k_factor={factor}", len(queries) / t,
                     recall_at_10(found, truth)))
    del bq

    def two_stage(name, hasher):
        """RerankedNeighbors over ``hasher``'s codes, at each ``--candidates``, and with each
        smaller ``--reranked``; the index time."""
        search = RerankedNeighbors(hasher, n_neighbors=10, metric="cosine", n_jobs=1)
        t_index, _ = timed(lambda: search.fit(base))
        for n_candidates in args.candidates:
            for n_reranked in [None] + [m for m in args.reranked if 10 <= m < n_candidates]:
                search.set_params(n_candidates=n_candidates, n_reranked=n_reranked)  # read at each search
                search.kneighbors(queries[:32])  # compile the search kernels (from 16 queries, the lane scan)
                t, found = timed(lambda: search.kneighbors(queries, return_distance=False), args.repeats)
                setting = f"n_candidates={n_candidates}" + (f", n_reranked={n_reranked}" if n_reranked else "")
                rows.append((name, setting, len(queries) / t, recall_at_10(found, truth)))
        return t_index

    # Binary quantization (one bit a centred dimension) through sortedhash's search.
    two_stage(f"binary quantization {d} bits + re-ranking", BinaryQuantizer())
    params = retrieval.parse_params(args.nsh_params)
    for bits in args.bits:
        # Fitted on the rows it will encode: the training features, normalised as the database is.
        t_fit, nsh = timed(lambda: NSHTransformer(n_bits=bits, max_epochs=args.epochs, random_state=0,
                                                  **params).fit(unit(train)))
        t_index = two_stage(f"NSH {bits} bits + re-ranking", FrozenEstimator(nsh))
        print(f"NSH {bits} bits: fit {t_fit:.0f} s on {len(train)} rows, encode + index {t_index:.0f} s", flush=True)

    # Minutes have passed, and a shared machine's speed drifts: exact search is timed again, and
    # the faster of the two is the reference, so no ratio gains from a slow start. One thread is
    # set again and the CPU / wall time printed: until sortedhash kept it from doing so, numba's
    # first thread start reset faiss's threads to every core (sortedhash/neighbors/_threads.py).
    faiss.omp_set_num_threads(1)
    end_qps, _, end_cpu = exact_search()
    print(f"exact search: {exact_qps:,.0f} q/s at the start, {end_qps:,.0f} at the end (the faster is the reference; "
          f"CPU / wall time {start_cpu:.2f} and {end_cpu:.2f})")
    exact_qps = max(exact_qps, end_qps)
    rows[0] = (rows[0][0], "", exact_qps, 1.0)
    print(f"\n| method | setting | q/s | recall@10 | q/s ÷ exact |\n|---|---|---:|---:|---:|")
    for name, setting, qps, recall in rows:
        print(f"| {name} | {setting} | {qps:,.0f} | {recall:.3f} | {qps / exact_qps:.1f} |")
    if args.out:
        write_outputs(rows, args.out, f"{args.dataset}, {len(base):,} rows, one thread")
    print(f"\nfastest setting with recall@10 >= {args.target}:")
    for name in dict.fromkeys(r[0] for r in rows[1:]):
        good = [r for r in rows if r[0] == name and r[3] >= args.target]
        if good:
            best = max(good, key=lambda r: r[2])
            print(f"  {name}: {best[1]}, {best[2]:,.0f} q/s = {best[2] / exact_qps:.1f}x exact, recall {best[3]:.3f}")
        else:
            print(f"  {name}: none reaches it (best recall {max(r[3] for r in rows if r[0] == name):.3f})")


if __name__ == "__main__":
    main()
