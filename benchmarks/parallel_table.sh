#!/usr/bin/env bash
# Run benchmarks/retrieval.py as one process per (length, seed), JOBS at a time, then merge
# the runs into one table. On a GPU the small per-step kernels leave it mostly idle, so
# several processes side by side finish the table several times sooner; on CPUs give each
# process one thread (OMP_NUM_THREADS=1, set here) and JOBS = cores.
#
#   JOBS=8 bash benchmarks/parallel_table.sh OUT DATASET [retrieval.py options...]
#
# e.g. JOBS=9 bash benchmarks/parallel_table.sh benchmarks/results/cifar10-gpu cifar10 \
#        --data ../shared/data/cifar10_jpg --cache ~/.cache/sortedhash --methods "plain NCE" "NSH torchsort"
# Features are computed (and cached) once, by the first process, before the others start.
set -euo pipefail
out=$1; dataset=$2; shift 2
jobs=${JOBS:-4}
bits=(${BITS:-16 32 64})
seeds=${SEEDS:-3}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1} MPLBACKEND=Agg
mkdir -p "$out"

# Fill the feature cache once (LSH only: seconds once the features exist).
"$python" "$here/retrieval.py" "$dataset" "$@" --bits "${bits[0]}" --seeds 0 --methods LSH --out "$out/features" \
    > "$out/features.log" 2>&1 || { cat "$out/features.log"; exit 1; }

pids=()
for b in "${bits[@]}"; do
  for ((s = 0; s < seeds; s++)); do
    while (( $(jobs -rp | wc -l) >= jobs )); do sleep 1; done
    "$python" "$here/retrieval.py" "$dataset" "$@" --bits "$b" --seeds 1 --first-seed "$s" \
        --out "$out/b${b}s${s}" > "$out/b${b}s${s}.log" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
"$python" "$here/merge_runs.py" "$out"/b*s*/runs.csv --out "$out"
exit $status
