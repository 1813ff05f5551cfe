"""Merge the runs.csv of several retrieval.py processes into one table.

Seeds or code lengths run side by side (one process each, see ``parallel_table.sh``) each
write their own runs.csv; this stacks them and writes results.csv, results.md and
map_vs_bits.png (mean ± std over all seeds) into --out. The float-feature reference is
the same in every process and is kept once; a (method, length, seed) run found twice is an
error rather than a silent double count.

Run: ``python benchmarks/merge_runs.py RUN_DIR/*/runs.csv --out benchmarks/results/merged``
"""

import argparse
import os
from pathlib import Path

from retrieval import FLOAT, read_runs, summarize, write_runs, write_tables


def merge(paths):
    runs, seen_float = [], False
    for path in paths:
        for run in read_runs(path):
            if run["method"] == FLOAT:
                if seen_float:
                    continue
                seen_float = True
            runs.append(run)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="runs.csv files written by retrieval.py")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    runs = merge(args.runs)
    os.makedirs(args.out, exist_ok=True)
    write_runs(runs, os.path.join(args.out, "runs.csv"))
    write_tables(runs, args.out)
    for row in summarize(runs):
        print(f"{int(row['bits']):>3} bits {row['method']:<24} mAP@k {row['map_at_k']:.4f} ± "
              f"{row['map_at_k_std']:.4f}  mAP {row['map']:.4f}  seeds {row['seeds']}  fit {row['fit_s']:.1f} s")
    print(Path(args.out, "results.md").read_text())


if __name__ == "__main__":
    main()
