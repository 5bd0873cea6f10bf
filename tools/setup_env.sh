#!/usr/bin/env bash
# Create (or update) the virtual environment .venv with vivit_mm and its
# pinned stack. Safe to run again: pip skips what is already installed.
#
#   VIVIT_VENV=path          put the environment elsewhere (default .venv)
#   PYTHON=python3.11        the interpreter that creates it
#   VIVIT_TORCH=cpu|cuda     which torch build (default: cuda when nvidia-smi
#                            finds a GPU, else cpu)
#   VIVIT_TORCH_INDEX=URL    where the CPU-only build comes from (default:
#                            PyTorch's CPU wheel index); where it cannot be
#                            reached, the default (CUDA) wheels are installed
#   VIVIT_EXTRAS=tests,...   extras of vivit_mm to install (default: tests)
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

# torch first, pinned: the tested pair (a newer torch may pull a new CUDA
# build). A CPU-only machine gets the CPU build (under 1 GB instead of about
# 5.5 GB of CUDA libraries) where its index can be reached.
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
KIND=${VIVIT_TORCH:-}
if [ -z "$KIND" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    KIND=cuda
  else
    KIND=cpu
  fi
fi
if "$VENV/bin/python" -c "import sys, torch, torchvision; sys.exit(not (torch.__version__.split('+')[0] == '2.14.1' and torchvision.__version__.split('+')[0] == '0.29.1'))" >/dev/null 2>&1; then
  echo "setup_env: torch is installed already ($("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))."
elif [ "$KIND" = cpu ]; then
  INDEX=${VIVIT_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
  if ! $PIP install -q --retries 0 --timeout 15 --index-url "$INDEX" $TORCH_PINS 2>/dev/null; then
    echo "setup_env: no CPU-only torch from $INDEX (unreachable, or it has no $TORCH_PINS);"
    echo "setup_env: installing the default torch wheels instead (they include CUDA libraries; CPU works the same)."
    $PIP install -q $TORCH_PINS
  fi
else
  $PIP install -q $TORCH_PINS
fi

# Path-based editable install (a .pth entry for this folder, not an import
# hook), so a folder named vivit_mm in the working directory, e.g. this
# clone seen from its parent folder, cannot shadow the package.
EXTRAS=${VIVIT_EXTRAS:-tests}
if ! $PIP install -q -e ".[$EXTRAS]" --config-settings editable_mode=compat; then
  echo "setup_env: this setuptools refuses the path-based editable mode; installing in its default mode (a folder named vivit_mm in the working directory can then shadow the package)."
  $PIP install -q -e ".[$EXTRAS]"
fi
"$VENV/bin/python" -c "import vivit_mm, torch, mmaction; print('vivit_mm', vivit_mm.__version__, '| torch', torch.__version__, '| mmaction2', mmaction.__version__)"
cat <<EOF
setup_env: done. Use the environment either way:
  $VENV/bin/python tools/run_demo.py
  source $VENV/bin/activate && python tools/run_demo.py
EOF
