#!/usr/bin/env bash
# Set up the environment if needed, then build the documentation site into site/
# (warnings are errors). Pass "serve" to preview it at http://127.0.0.1:8000 instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NO_MKDOCS_2_WARNING=1
if [ "${1:-build}" = serve ]; then
  exec .venv/bin/mkdocs serve
fi
exec .venv/bin/mkdocs build --strict
