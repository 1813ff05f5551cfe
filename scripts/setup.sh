#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install everything into it.
#
# Order matters: torch first, then torchsort compiled against that torch (it ships only as a
# source distribution and must see torch at build time, hence --no-build-isolation), then the
# package itself with its test/doc extras. A stamp file keeps a re-run on a ready machine cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SORTEDHASH_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${SORTEDHASH_TORCH:-torch==2.13.0}
TORCHSORT_SPEC=${SORTEDHASH_TORCHSORT:-torchsort==0.1.10}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.sortedhash-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

# pip warns about every empty local index folder on these machines; keep real messages only.
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }

pip_install --upgrade "pip>=24" "setuptools>=77" wheel "numpy>=2"
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] installing $TORCH_SPEC"
  pip_install "$TORCH_SPEC"
fi

if ! "$PY" -c "import torch, torchsort" 2>/dev/null; then
  echo "[setup] building $TORCHSORT_SPEC against the installed torch (about a minute)"
  build_path=$PATH
  if ! "$PY" -c "import sys, torch; sys.exit(torch.version.cuda is None)"; then
    # A CPU torch cannot build CUDA kernels: hide nvcc so torchsort builds its CPU kernels only.
    build_path=$(printf '%s' "$PATH" | tr ':' '\n' | while read -r d; do
      [ -x "$d/nvcc" ] || printf '%s:' "$d"; done)
    build_path=${build_path%:}
  fi
  PATH=$build_path pip_install --no-build-isolation --no-cache-dir "$TORCHSORT_SPEC"
fi

echo "[setup] installing sortedhash and its extras"
pip_install -e ".[test]"
echo "$want" > "$stamp"
echo "[setup] done"
