#!/usr/bin/env bash
# Set up the environment if needed (scripts/setup.sh), then run the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/digits_demo.py "$@"
