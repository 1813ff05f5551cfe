"""Search at scale: multi-index hashing against the scan and faiss, on learned and uniform codes.

Two kinds of databases of ``--bits``-bit codes, grown to each size in ``--sizes``:

- ``learned``: the codes of an ``NSHTransformer`` fitted on real features (20 Newsgroups
  MiniLM or CIFAR-10 EfficientNet-Lite0, standardised as in ``retrieval.py``). The database
  is the real database rows followed by noisy copies: each copy is a real row drawn at
  random plus Gaussian noise of ``--noise`` times the features' mean per-dimension standard
  deviation, encoded by the same model (chunk by chunk; the features are never all held).
  Queries: the dataset's test queries, encoded. The noise is large (default 5) because NSH
  codes are made to resist noise: at noise 1, copies of 20 Newsgroups posts mostly keep
  their original's code, and the median 10th-neighbour distance of 1M rows is 0 (2 among
  the real rows; 2 at noise 5). The script prints the k-th neighbour's
  Hamming distance (10th, 50th and 90th percentile over queries) in the real rows alone and
  in the grown database, so the reader sees how the copies change the neighbourhoods.
- ``uniform``: uniformly random codes and queries (the worst case for MIH).

For each database, k and thread count, queries per second of ``HammingNeighbors`` with
``algorithm="mih"``, ``"brute"`` and ``"auto"`` (all checked equal to each other), faiss
``IndexBinaryFlat`` (exact; distances checked equal), and faiss's approximate
``IndexBinaryIVF``, ``IndexBinaryMultiHash`` and ``IndexBinaryHNSW`` with their recall@k
(the share of the exact k neighbours' distances they match, ties counted as found); the
ratio of each to ``IndexBinaryFlat``; MIH's index size (against the codes) and build time;
the process's peak RSS. HNSW is built only up to ``--hnsw-max-rows`` rows (its build takes
hours at 100M), MultiHash searched only up to ``--multihash-max-rows`` (45 q/s at 10M).
Before anything else: ``import sortedhash`` and the first ``kneighbors`` in a
fresh process, twice (the second run reads the kernels compiled by the first from the cache).

The model and the codes are cached under ``--workdir``, so reruns skip training and encoding:
``nsh_{dataset}_{bits}_{epochs}.joblib`` and ``learned_{dataset}_{bits}_{epochs}_{rows}_{noise}.npy``
(with ``.queries.npy`` beside it); the epochs are in both names, since codes are re-encoded
with the model when a run asks for more queries than were cached.

Run: ``python benchmarks/search_scale.py --data ../shared/data --cache DIR --workdir DIR
[--sizes 1000000 10000000 100000000] [--k 10 100] [--threads 1 2] [--plot qps.png]``;
``--plot qps.png --from-logs OUT...`` plots the tables of saved outputs.
"""

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np

from sortedhash import HammingNeighbors

ROOT = Path(__file__).resolve().parent


def rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_flags():
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    return "+".join(f for f in ("avx2", "avx512_vpopcntdq") if f in flags) or platform.machine()


def cold_start(n_runs=2):
    """import + first kneighbors in fresh processes: (import s, first call s) per run."""
    script = ("import time; t = time.perf_counter(); import numpy as np; import sortedhash as sh; "
              "t1 = time.perf_counter(); db = np.random.default_rng(0).integers(0, 256, (1000, 8), dtype=np.uint8); "
              "sh.HammingNeighbors(n_neighbors=5).fit(db).kneighbors(db[:10]); "
              "print(t1 - t, time.perf_counter() - t1)")
    runs = []
    for _ in range(n_runs):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        runs.append(tuple(float(v) for v in out.stdout.split()))
    return runs


def learned_database(args, rows):
    """Codes of the real database rows and their noisy copies, and of the queries."""
    import torch

    sys.path.insert(0, str(ROOT))
    from retrieval import load_standardised

    from sortedhash import NSHTransformer

    torch.set_num_threads(os.cpu_count())
    args.views = 0
    _, _, train, query, db = load_standardised(args)
    path = Path(args.workdir) / f"learned_{args.dataset}_{args.bits}_{args.epochs}_{rows}_{args.noise}.npy"
    queries_path = path.with_suffix(".queries.npy")
    n_queries = min(args.queries, len(query))
    model_path = Path(args.workdir) / f"nsh_{args.dataset}_{args.bits}_{args.epochs}.joblib"
    if path.exists():
        queries = np.load(queries_path)
        if len(queries) < n_queries:  # cached by a run that asked for fewer: encode as many as asked
            queries = joblib.load(model_path).transform(query[:n_queries])
            np.save(queries_path, queries)
        return np.load(path, mmap_mode="r"), queries[:n_queries], len(db)
    if model_path.exists():
        model = joblib.load(model_path)
    else:
        model = NSHTransformer(n_bits=args.bits, max_epochs=args.epochs, random_state=0).fit(train)
        joblib.dump(model, model_path)
    codes = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.uint8,
                                      shape=(rows, args.bits // 8))
    codes[: len(db)] = model.transform(db)
    rng = np.random.default_rng(0)
    scale = np.float32(args.noise * db.std(axis=0).mean())
    chunk = 200_000
    start_time = time.perf_counter()
    for start in range(len(db), rows, chunk):
        stop = min(start + chunk, rows)
        block = db[rng.integers(0, len(db), stop - start)]
        block += scale * rng.standard_normal(block.shape, dtype=np.float32)
        codes[start:stop] = model.transform(block)
        if (start // chunk) % 50 == 0:
            print(f"  encoded {stop:,} rows ({time.perf_counter() - start_time:.0f} s)", flush=True)
    codes.flush()
    del codes
    os.replace(path.with_suffix(".tmp.npy"), path)
    np.save(queries_path, model.transform(query[:n_queries]))
    return np.load(path, mmap_mode="r"), np.load(queries_path), len(db)


def uniform_database(args, rows):
    rng = np.random.default_rng(0)
    n_bytes = args.bits // 8
    database = rng.integers(0, 256, (rows, n_bytes), dtype=np.uint8)
    # Read-only, as the learned codes' memory map is: HammingNeighbors then keeps it without
    # a copy, and every estimator searches the same array (copies of the same codes scanned
    # up to 1.22x apart, research/copy_speed.py, which would read as a difference between
    # the methods).
    database.flags.writeable = False
    return database, rng.integers(0, 256, (args.queries, n_bytes), dtype=np.uint8), None


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def recall(found_dist, exact_dist):
    """Share of the exact k-th distances matched: per query, how many of the k found are at
    most the exact k-th distance (ties count as found), over k."""
    kth = exact_dist[:, -1:]
    return float(np.mean(np.sum((found_dist >= 0) & (found_dist <= kth), axis=1) / exact_dist.shape[1]))


def kth_percentiles(dist):
    return "/".join(f"{v:.0f}" for v in np.percentile(dist[:, -1], [10, 50, 90]))


TABLE_COLUMNS = ("N", "bits", "k", "threads", "mih", "brute", "auto", "faiss flat")


def parse_rows(lines, kind=None):
    """The numeric columns of the printed table rows, with the kind of codes from the headings."""
    out = []
    for line in lines:
        if line.startswith("## "):
            kind = line.split()[1]
        elif line.startswith("| ") and line[2].isdigit():
            cells = [c.strip().replace(",", "") for c in line.strip("|\n").split("|")]
            out.append(dict(kind=kind, **{name: float(v) for name, v in zip(TABLE_COLUMNS, cells)}))
    return out


def plot(rows, path):
    """q/s against N, one panel per kind of codes and k, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["kind"], int(r["k"])) for r in rows if r["threads"] == 1})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (kind, k) in zip(axes[0], panels):
        sel = sorted((r for r in rows if (r["kind"], int(r["k"]), r["threads"]) == (kind, k, 1)),
                     key=lambda r: r["N"])
        for method, style in (("mih", "o-"), ("brute", "s-"), ("auto", "x--"), ("faiss flat", "^:")):
            ax.plot([r["N"] for r in sel], [r[method] for r in sel], style, label=method)
        ax.set(xscale="log", yscale="log", xlabel="database size N", title=f"{kind} codes, k = {k}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("queries / s (one thread)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args, kind, rows, database, queries, n_real, faiss):
    n_bits = args.bits
    table = []
    print(f"\n## {kind} codes, N = {rows:,}, {n_bits} bits, {len(queries):,} queries ({cpu_flags()})", flush=True)
    if n_real:
        real = HammingNeighbors(algorithm="brute").fit(np.asarray(database[:n_real]))
        for k in args.k:
            print(f"k-th distance p10/p50/p90, k = {k}: real rows ({n_real:,}) "
                  f"{kth_percentiles(real.kneighbors(queries, k)[0])}", flush=True)
    t_build, mih = timed(lambda: HammingNeighbors(algorithm="mih").fit(database))
    index_ratio = mih._mih.nbytes / (database.shape[0] * database.shape[1])
    print(f"MIH: {mih.n_substrings_} substrings, built in {t_build:.1f} s, index {mih._mih.nbytes / 2**20:.0f} MiB "
          f"= {index_ratio:.2f} x the codes", flush=True)
    auto = HammingNeighbors(algorithm="auto").fit(database)
    brute = HammingNeighbors(algorithm="brute").fit(database)
    flat = faiss.IndexBinaryFlat(n_bits)
    flat.add(np.asarray(database))
    approx = {}
    t_ivf, ivf = timed(lambda: _ivf(faiss, database, n_bits))
    approx["IVF"] = (ivf, f"built {t_ivf:.0f} s")
    if rows <= args.multihash_max_rows:
        multihash = faiss.IndexBinaryMultiHash(n_bits, mih.n_substrings_, n_bits // mih.n_substrings_)
        multihash.nflip = 2
        t_mh, _ = timed(lambda: multihash.add(np.asarray(database)))
        approx["MultiHash"] = (multihash, f"built {t_mh:.0f} s")
    if rows <= args.hnsw_max_rows:
        hnsw = faiss.IndexBinaryHNSW(n_bits, 16)
        faiss.omp_set_num_threads(os.cpu_count())
        t_hnsw, _ = timed(lambda: hnsw.add(np.asarray(database)))
        hnsw.hnsw.efSearch = 128
        approx["HNSW"] = (hnsw, f"built {t_hnsw:.0f} s")
    if args.per_call:
        print(f"queries {args.per_call} a call")
    print(f"| N | bits | k | threads | mih q/s | brute q/s | auto q/s | faiss flat q/s | mih / flat | "
          f"auto / best | " + " | ".join(f"{name} q/s (recall)" for name in approx) + " | peak RSS GB |")
    print("|" + "---|" * (11 + len(approx)))
    for k in args.k:
        if n_real:
            exact = brute.kneighbors(queries, k)[0]
            print(f"k-th distance p10/p50/p90, k = {k}: grown database {kth_percentiles(exact)}", flush=True)
        for threads in args.threads:
            faiss.omp_set_num_threads(threads)
            for est in (mih, auto, brute):
                # Compile (or load) outside the timing: 32 queries reach the scan's sixteen-query
                # kernel, one query the one-query kernel (which --per-call's small calls use).
                for n in (32, 1):
                    est.set_params(n_jobs=threads).kneighbors(queries[:n], k)
            t_mih, (d_mih, i_mih) = timed(lambda: in_calls(lambda q: mih.kneighbors(q, k), queries, args.per_call))
            t_brute, (d_brute, i_brute) = timed(lambda: in_calls(lambda q: brute.kneighbors(q, k), queries,
                                                                 args.per_call))
            t_auto, (d_auto, i_auto) = timed(lambda: in_calls(lambda q: auto.kneighbors(q, k), queries,
                                                              args.per_call))
            t_flat, (d_flat, _) = timed(lambda: in_calls(lambda q: flat.search(q, k), queries, args.per_call))
            assert np.array_equal(d_mih, d_brute) and np.array_equal(i_mih, i_brute)
            assert np.array_equal(d_auto, d_brute) and np.array_equal(i_auto, i_brute)
            assert np.array_equal(d_flat, d_brute)
            cells = []
            for name, (index, _) in approx.items():
                t, (d, _) = timed(lambda: in_calls(lambda q: index.search(q, k), queries, args.per_call))
                cells.append(f"{len(queries) / t:,.0f} ({recall(d, d_brute):.3f})")
            qps = {name: len(queries) / t for name, t in
                   (("mih", t_mih), ("brute", t_brute), ("auto", t_auto), ("flat", t_flat))}
            print(f"| {rows:,} | {n_bits} | {k} | {threads} | {qps['mih']:,.0f} | {qps['brute']:,.0f} | "
                  f"{qps['auto']:,.0f} | {qps['flat']:,.0f} | {qps['mih'] / qps['flat']:.1f} | "
                  f"{qps['auto'] / max(qps['mih'], qps['brute']):.2f} | " + " | ".join(cells)
                  + f" | {rss_gb():.1f} |", flush=True)
            table.append({"kind": kind, "N": rows, "bits": n_bits, "k": k, "threads": threads, "mih": qps["mih"],
                          "brute": qps["brute"], "auto": qps["auto"], "faiss flat": qps["flat"]})
    print("built: " + ", ".join(f"{name} {note}" for name, (_, note) in approx.items()))
    return table


def in_calls(search, queries, per_call):
    """``search`` over consecutive calls of ``per_call`` queries (one call when None), its
    results stacked."""
    if not per_call:
        return search(queries)
    parts = [search(queries[i:i + per_call]) for i in range(0, len(queries), per_call)]
    return tuple(np.concatenate(p) for p in zip(*parts))


def _ivf(faiss, database, n_bits):
    nlist = min(4096, len(database) // 256)
    ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(n_bits), n_bits, nlist)
    sample = np.asarray(database[np.random.default_rng(0).choice(len(database), min(len(database), 50 * nlist),
                                                                 replace=False)])
    ivf.train(sample)
    ivf.add(np.asarray(database))
    ivf.nprobe = 16
    return ivf


def main():
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["learned", "uniform"], choices=["learned", "uniform"])
    parser.add_argument("--dataset", default="newsgroups", choices=["newsgroups", "cifar10", "digits"])
    parser.add_argument("--data", help="folder of the dataset's archives (../shared/data)")
    parser.add_argument("--cache", help="folder for cached features (see retrieval.py)")
    parser.add_argument("--workdir", help="folder for the cached model and codes (required to run)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--per-call", type=int, default=None, metavar="N",
                        help="search the queries N a call, as a service answering small batches (default: all in one)")
    parser.add_argument("--noise", type=float, default=5.0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--hnsw-max-rows", type=int, default=2_000_000)
    parser.add_argument("--multihash-max-rows", type=int, default=10_000_000)
    parser.add_argument("--database-size", type=int, default=50000)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--plot", help="write a plot of q/s against N (PNG) from this run's tables")
    parser.add_argument("--from-logs", nargs="+", help="only plot (--plot) the tables of these saved outputs")
    args = parser.parse_args()
    if args.from_logs:
        lines = [line for path in args.from_logs for line in Path(path).read_text().splitlines()]
        plot(parse_rows(lines), args.plot)
        return
    if not args.workdir:
        parser.error("--workdir is required")
    os.makedirs(args.workdir, exist_ok=True)
    print(f"CPU flags: {cpu_flags()}, {os.cpu_count()} cores, faiss {faiss.__version__}")
    if not args.skip_cold_start:
        for i, (t_import, t_first) in enumerate(cold_start()):
            print(f"fresh process {i + 1}: import sortedhash {t_import:.2f} s, first kneighbors {t_first:.2f} s")
    table = []
    for kind in args.kinds:
        for rows in args.sizes:
            make = learned_database if kind == "learned" else uniform_database
            database, queries, n_real = make(args, rows)
            table += run(args, kind, rows, database, queries, n_real, faiss)
            del database
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
