#!/usr/bin/env bash
# Create (or update) the virtual environment .venv with vivit_mm and its
# pinned stack. Safe to run again: pip skips what is already installed.
#   VIVIT_VENV=path  to put the environment elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VIVIT_VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install -q -U pip setuptools wheel
# torch first, pinned: the tested pair (a newer torch may pull a new CUDA build).
$PIP install -q torch==2.14.1 torchvision==0.29.1
$PIP install -q -e '.[tests]'
"$VENV/bin/python" -c "import vivit_mm, torch, mmaction; print('vivit_mm', vivit_mm.__version__, '| torch', torch.__version__, '| mmaction2', mmaction.__version__)"
