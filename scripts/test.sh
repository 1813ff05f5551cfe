#!/usr/bin/env bash
# Set up the environment if needed (scripts/setup.sh), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One BLAS/OpenMP thread per process: the suite's small problems gain nothing from more,
# and oversubscribed OpenMP threads spin and slow everything down.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python -m pytest "$@"
