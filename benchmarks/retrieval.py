"""Side-by-side retrieval benchmark: every hasher on the same features, queries and database.

Datasets (paths are arguments; features are computed once and cached under --cache):

- ``digits``: scikit-learn's digits (ships offline), 200 queries, the rest database and
  training set, mAP and mAP@100. A smoke run of a minute or two with ``--epochs 10``.
- ``newsgroups --data PATH``: 20 Newsgroups (headers, footers, quotes removed) through the
  offline MiniLM encoder; the first 50 test posts of each group as queries, the training
  posts as database and training set; mAP@100.
- ``cifar10 --data PATH``: CIFAR-10 through the offline EfficientNet-Lite0 (1280-d); the
  first 100 test images of each class as queries, ``--database-size`` training images as
  database (50,000 = all), a ``--train-size`` subset for training; mAP@1000. With
  ``--views V``, V augmented views of each training image are also cached and an NSH
  variant trains on them (multi-view input).

Scores: mAP against the labels, and neighbour recall: recall@10 of the exact cosine top-10
(on the standardised features the hashers see) among the top 10, 100 and 1,000 Hamming
candidates, and bytes an item.

Methods: the float features (cosine ranking, a reference), LSH, PCA signs, ITQ, binary
quantization (one bit per feature, at its own length whatever ``--bits`` asks), plain
contrastive hashing (NT-Xent on codes, no sorting), NSH with each sorter (the defaults),
the two without neighbour mixing ("plain NCE no-mix", "NSH no-mix"), and the faithful NSH
of the paper (``sorted_weight=1, code_nce_weight=0``, light augmentation, no mixing). Trained methods run with ``--seeds`` seeds (mean ± std), starting at
``--first-seed`` (to add seeds to an earlier run). ``--variant NAME:KEY=VALUE,...`` adds
an NSHTransformer with other parameters (see ``variant``), e.g. ``--variant m4:n_positives=4``.
Prints a table and writes runs.csv (one row per method, length and seed), results.csv
(mean ± std), results.md, map_vs_bits.png and precision_recall.png into --out.
``merge_runs.py`` makes the same tables from the runs.csv of several processes (seeds or
lengths run side by side, see ``parallel_table.sh``).

Run: ``python benchmarks/retrieval.py digits --out benchmarks/results/digits --epochs 10``
"""

import argparse
import csv
import os
import time

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler, normalize

from sortedhash import BinaryQuantizer, ITQTransformer, LSHTransformer, NSHTransformer, PCAHashTransformer
from sortedhash.metrics import (mean_average_precision, mean_average_precision_from_distances,
                                neighbor_recall, precision_at_k, precision_recall_curve)


def cached(cache, name, compute):
    if cache is None:
        return compute()
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, name + ".npz")
    if os.path.exists(path):
        with np.load(path) as f:
            return tuple(f[k] for k in sorted(f.files))
    start = time.perf_counter()
    arrays = compute()
    print(f"computed {name} in {time.perf_counter() - start:.0f} s", flush=True)
    np.savez(path, **{f"a{i}": a for i, a in enumerate(arrays)})
    return arrays


def digits_data(args):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(X))
    X, y = X[perm].astype(np.float32), y[perm]
    return dict(train=X[200:], query=X[:200], db=X[200:], train_y=y[200:], query_y=y[:200], db_y=y[200:],
                k=100, views=None)


def newsgroups_data(args):
    from sortedhash.datasets import load_20newsgroups
    from sortedhash.extractors import MiniLMFeatures

    def compute():
        train_texts, train_y, _ = load_20newsgroups(args.data, "train")
        query_texts, query_y, _ = load_20newsgroups(args.data, "test", per_group=50)
        enc = MiniLMFeatures()
        return enc.transform(train_texts), train_y, enc.transform(query_texts), query_y

    F_train, y_train, F_query, y_query = cached(args.cache, "newsgroups_minilm", compute)
    perm = np.random.RandomState(0).permutation(len(F_train))  # database in a fixed random order
    F_train, y_train = F_train[perm], y_train[perm]
    return dict(train=F_train, query=F_query, db=F_train, train_y=y_train, query_y=y_query, db_y=y_train,
                k=100, views=None)


def cifar_data(args):
    from sortedhash.datasets import load_cifar10_jpg
    from sortedhash.extractors import EfficientNetLite0Features

    def compute():
        train_images, train_y, _ = load_cifar10_jpg(args.data, "train")
        perm = np.random.RandomState(0).permutation(len(train_images))[: args.database_size]
        query_images, query_y, _ = load_cifar10_jpg(args.data, "test", per_class=100)
        enc = EfficientNetLite0Features()
        return (enc.transform(train_images[perm]), train_y[perm], enc.transform(query_images), query_y,
                perm.astype(np.int64))

    F_db, y_db, F_query, y_query, perm = cached(args.cache, f"cifar10_effnet_db{args.database_size}", compute)
    train = slice(0, args.train_size)
    views = None
    if args.views:
        def compute_views():
            train_images, _, _ = load_cifar10_jpg(args.data, "train")
            enc = EfficientNetLite0Features(n_views=args.views, random_state=0)
            return (enc.transform(train_images[perm[train]]),)

        (views,) = cached(args.cache, f"cifar10_effnet_views{args.views}_train{args.train_size}", compute_views)
    return dict(train=F_db[train], query=F_query, db=F_db, train_y=y_db[train], query_y=y_query, db_y=y_db,
                k=1000, views=views)


def methods(epochs):
    return {
        "LSH": (False, lambda b, s: LSHTransformer(n_bits=b, random_state=s)),
        "PCA sign": (False, lambda b, s: PCAHashTransformer(n_bits=b)),
        "ITQ": (False, lambda b, s: ITQTransformer(n_bits=b, random_state=s)),
        # One bit per feature whatever --bits asks: run once, at its own length.
        BQ: (False, lambda b, s: BinaryQuantizer()),
        "plain NCE": (True, variant(dict(sorted_weight=0.0), epochs)),
        "plain NCE no-mix": (True, variant(dict(sorted_weight=0.0, mix_neighbors=0), epochs)),
        "NSH no-mix": (True, variant(dict(mix_neighbors=0), epochs)),
        "NSH softsort": (True, variant(dict(sorter="softsort"), epochs)),
        "NSH torchsort": (True, variant({}, epochs)),
        "NSH faithful": (True, variant(dict(sorted_weight=1.0, code_nce_weight=0.0, noise_std=0.3,
                                            feature_dropout=0.1, mix_neighbors=0), epochs)),
    }


def parse_params(text):
    """``"a=1,b=0.5,c=none"`` -> ``{"a": 1, "b": 0.5, "c": None}``."""
    params = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        params[key.strip()] = None if value in ("none", "None") else value
    return params


def variant(params, epochs):
    """A maker of NSHTransformers with ``params`` (its public parameters) over the defaults.

    ``views=1`` trains on the cached image views; ``hidden_sizes=A/B/...`` sets the MLP's
    hidden widths.
    """
    params = dict(params)
    on_views = bool(params.pop("views", 0))
    if "hidden_sizes" in params:  # e.g. hidden_sizes=2048 or 1024/1024
        params["hidden_sizes"] = tuple(int(w) for w in str(params["hidden_sizes"]).split("/"))
    params.setdefault("max_epochs", epochs)

    def make(bits, seed):
        return NSHTransformer(n_bits=bits, random_state=seed, **params)

    make.views = on_views
    return make


FLOAT = "float features (cosine)"
BQ = "binary quantization"
# Scores summarised per (method, bits); runs.csv of older runs may lack the recall columns.
SCORES = ("map", "map_at_k", "p_at_100", "r10_at_10", "r10_at_100", "r10_at_1000", "bytes", "fit_s", "encode_s")
RUN_FIELDS = ["dataset", "device", "method", "bits", "seed", "k", *SCORES]
CANDIDATES = (10, 100, 1000)


def write_runs(runs, path):
    """One row per (method, bits, seed): the raw results, merged across processes by merge_runs.py."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RUN_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)


def read_runs(path):
    with open(path, newline="") as f:
        return [{key: value if key in ("dataset", "device", "method") else float(value or "nan")
                 for key, value in row.items()} for row in csv.DictReader(f)]


def summarize(runs):
    """Mean ± std over seeds of each (method, bits), in the order the runs came."""
    groups = {}
    for run in runs:
        groups.setdefault((run["method"], int(run["bits"])), []).append(run)
    rows = []
    for (method, bits), group in groups.items():
        seeds = sorted({int(r["seed"]) for r in group})
        if len(seeds) != len(group):
            raise ValueError(f"{method} at {bits} bits: a seed appears twice in the runs")
        scores = np.array([[g.get(key, np.nan) for key in SCORES] for g in group], dtype=float)
        row = dict(method=method, bits=bits, seeds=len(group))
        for key, values in zip(SCORES, scores.T):
            row[key] = values.mean()
            if key in ("map", "map_at_k", "r10_at_100"):
                row[key + "_std"] = values.std()
        rows.append(row)
    return rows


def write_tables(runs, out):
    """results.csv (mean and std per method and length), results.md and map_vs_bits.png from the runs."""
    rows = summarize(runs)
    floats = [r for r in rows if r["method"] == FLOAT]
    rows = [r for r in rows if r["method"] != FLOAT]
    if not rows:
        return
    dataset, device, k = runs[-1]["dataset"], runs[-1]["device"], int(runs[-1]["k"])
    bits = sorted({r["bits"] for r in rows})
    names = list(dict.fromkeys(r["method"] for r in rows))
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    float_map = floats[0]["map_at_k"] if floats else float("nan")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"{dataset}: mAP@{k} (mean ± std over seeds), float features (cosine) {float_map:.4f}; "
                f"fit on {device}\n\n")
        f.write("| method | " + " | ".join(f"{b} bits" for b in bits) + " | seeds | fit s (largest) |\n")
        f.write("|---|" + "---:|" * (len(bits) + 2) + "\n")
        for name in names:
            mine = {r["bits"]: r for r in rows if r["method"] == name}
            cells = [f"{mine[b]['map_at_k']:.3f} ± {mine[b]['map_at_k_std']:.3f}" if b in mine else "–"
                     for b in bits]
            largest = mine[max(mine)]
            f.write(f"| {name} | " + " | ".join(cells) + f" | {largest['seeds']} | {largest['fit_s']:.1f} |\n")
        f.write("\nNeighbour recall: recall@10 of the exact cosine top-10 among the top 10 / 100 / 1,000 "
                "Hamming candidates (the last two: what re-ranking those candidates returns), and bytes an item\n\n")
        f.write("| method | bits | bytes | top 10 | top 100 | top 1000 |\n|---|---:|---:|---:|---:|---:|\n")
        for name in names:
            for r in (r for r in rows if r["method"] == name):
                f.write(f"| {name} | {r['bits']} | {r['bytes']:.0f} | {r['r10_at_10']:.3f} | "
                        f"{r['r10_at_100']:.3f} ± {r['r10_at_100_std']:.3f} | {r['r10_at_1000']:.3f} |\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        from sortedhash.plotting import plot_map_vs_bits
    except ImportError:
        return
    results = {name: {r["bits"]: (r["map_at_k"], r["map_at_k_std"]) for r in rows if r["method"] == name}
               for name in names}
    ax = plot_map_vs_bits(results, ylabel=f"mAP@{k}")
    ax.axhline(float_map, color="grey", linestyle="--", label="float features")
    ax.legend(fontsize=7)
    ax.set_title(dataset)
    ax.figure.savefig(os.path.join(out, "map_vs_bits.png"), dpi=110, bbox_inches="tight")


def load_standardised(args):
    """The dataset's splits, and the training, query and database features standardised on training."""
    data = {"digits": digits_data, "newsgroups": newsgroups_data, "cifar10": cifar_data}[args.dataset](args)
    scaler = StandardScaler().fit(data["train"])
    train, query, db = (scaler.transform(data[k]).astype(np.float32) for k in ("train", "query", "db"))
    return data, scaler, train, query, db


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["digits", "newsgroups", "cifar10"])
    parser.add_argument("--data", help="folder of the dataset's archives (newsgroups, cifar10)")
    parser.add_argument("--cache", default=None, help="folder for cached features")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--methods", nargs="+", default=None, help="subset of the method names")
    parser.add_argument("--database-size", type=int, default=50000)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--views", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="an extra NSHTransformer with these parameters over the defaults (repeatable); "
                             "views=1 trains it on the cached image views, e.g. 'm4:n_positives=4' or "
                             "'views+noise:views=1,noise_std=0.3,feature_dropout=0.1'")
    args = parser.parse_args()
    data, scaler, train, query, db = load_standardised(args)
    os.makedirs(args.out, exist_ok=True)

    qy, dy, k = data["query_y"], data["db_y"], data["k"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"{args.dataset}: train {train.shape}, queries {query.shape[0]}, database {db.shape[0]}, k={k}, "
          f"epochs {args.epochs}, seeds {args.seeds}, device {device}", flush=True)
    cosine = 1 - normalize(query) @ normalize(db).T
    float_map = mean_average_precision_from_distances(cosine, qy, dy, k=k)
    print(f"float features (cosine): mAP@{k} {float_map:.4f}", flush=True)

    table = methods(args.epochs)
    views = None
    if data["views"] is not None:
        views = ((data["views"] - scaler.mean_) / scaler.scale_).astype(np.float32)
        table["NSH multi-view"] = (True, variant(dict(views=1, augment=None), args.epochs))
    for spec in args.variant:
        name, _, params = spec.partition(":")
        table[name] = (True, variant(parse_params(params), args.epochs))
    names = args.methods or list(table)
    runs = [dict(method=FLOAT, bits=0, seed=0, map=np.nan, map_at_k=float_map, p_at_100=np.nan, fit_s=0.0,
                 encode_s=0.0, k=k, dataset=args.dataset, device=device)]
    curves = {}
    for bits in args.bits:
        for name in names:
            trained, make = table[name]
            for seed in range(args.first_seed, args.first_seed + (args.seeds if trained else 1)):
                model = make(bits, seed)
                fit_input = train
                if getattr(make, "views", False):
                    if views is None:
                        raise SystemExit(f"{name} trains on image views: pass --views")
                    fit_input = views
                if name in ("PCA sign", "ITQ") and bits > min(train.shape) or name == BQ and bits != args.bits[0]:
                    break
                start = time.perf_counter()
                model.fit(fit_input)
                fit_s = time.perf_counter() - start
                start = time.perf_counter()
                db_codes, q_codes = model.transform(db), model.transform(query)
                encode_s = time.perf_counter() - start
                recall = {f"r10_at_{c}": neighbor_recall(q_codes, db_codes, query, db, k=10,
                                                         n_candidates=min(c, len(db)))
                          for c in CANDIDATES}
                runs.append(dict(method=name, bits=8 * db_codes.shape[1] if name == BQ else bits, seed=seed,
                                 bytes=db_codes.shape[1], **recall,
                                 map=mean_average_precision(q_codes, qy, db_codes, dy),
                                 map_at_k=mean_average_precision(q_codes, qy, db_codes, dy, k=k),
                                 p_at_100=precision_at_k(q_codes, qy, db_codes, dy, k=min(k, 100)),
                                 fit_s=fit_s, encode_s=encode_s, k=k, dataset=args.dataset, device=device))
                write_runs(runs, os.path.join(args.out, "runs.csv"))  # kept if a later run is stopped
                if bits == max(args.bits) and seed == args.first_seed:
                    curves[name] = precision_recall_curve(q_codes, qy, db_codes, dy)[:2]
            row = next((r for r in summarize(runs) if r["method"] == name and (r["bits"] == bits or name == BQ)),
                       None)
            if row is not None and (name != BQ or bits == args.bits[0]):
                print(f"{row['bits']:>3} bits {name:<15} mAP@{k} {row['map_at_k']:.4f} ± {row['map_at_k_std']:.4f}  "
                      f"mAP {row['map']:.4f}  P@{min(k, 100)} {row['p_at_100']:.4f}  recall@10 in 10/100/1000 "
                      f"{row['r10_at_10']:.3f}/{row['r10_at_100']:.3f}/{row['r10_at_1000']:.3f}  "
                      f"fit {row['fit_s']:.1f} s  encode {row['encode_s']:.2f} s", flush=True)

    write_tables(runs, args.out)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from sortedhash.plotting import plot_precision_recall

        ax = plot_precision_recall(curves)
        ax.set_title(f"{args.dataset}, {max(args.bits)} bits")
        ax.figure.savefig(os.path.join(args.out, "precision_recall.png"), dpi=110, bbox_inches="tight")
    except ImportError:
        print("matplotlib not installed: no figures")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
