#!/usr/bin/env bash
# Create (or update) the virtual environment .venv with vivit_mm and the
# tested stack (requirements/constraints.txt). Safe to run again: pip skips
# what is already installed.
#
#   VIVIT_VENV=path          put the environment elsewhere (default .venv)
#   PYTHON=python3.11        the interpreter that creates it
#   VIVIT_TORCH=cpu|cuda     which torch build (default: cuda when nvidia-smi
#                            finds a GPU, else cpu)
#   VIVIT_TORCH_INDEX=URL    where the CPU-only build comes from (default:
#                            PyTorch's CPU wheel index); where it cannot be
#                            reached, the default (CUDA) wheels are installed
#   VIVIT_MMACTION2_SRC=DIR  install MMAction2 from this source tree, editable,
#                            as MMAction2's install guide does (1.2.0 from
#                            source, say); without it an installed MMAction2
#                            is kept, else the tested 1.1.0 is installed
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
CONSTRAINTS=requirements/constraints.txt
$PIP install -q -U pip setuptools wheel
installed() {  # the installed version of a distribution, or nothing
  "$VENV/bin/python" -c "import sys; from importlib import metadata
try: print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError: pass" "$1"
}

# torch first, pinned: the tested pair (a newer torch may pull a new CUDA
# build). A CPU-only machine gets the CPU build (under 1 GB instead of about
# 5.5 GB of CUDA libraries) where its index can be reached.
TORCH_PINS=$(grep -E '^torch(vision)?==' "$CONSTRAINTS" | tr '\n' ' ')
KIND=${VIVIT_TORCH:-}
if [ -z "$KIND" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    KIND=cuda
  else
    KIND=cpu
  fi
fi
if [ "$(installed torch | cut -d+ -f1) $(installed torchvision | cut -d+ -f1)" = "$(echo $TORCH_PINS | sed 's/torch==//; s/torchvision==//')" ]; then
  echo "setup_env: torch is installed already ($(installed torch))."
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

# MMAction2: from a source tree when asked (its guide: pip install -v -e .),
# else the installed one, else the tested 1.1.0 (the 1.2.0 wheel on PyPI
# cannot import its models).
if [ -n "${VIVIT_MMACTION2_SRC:-}" ]; then
  echo "setup_env: installing MMAction2 from $VIVIT_MMACTION2_SRC (editable)."
  $PIP install -q -c "$CONSTRAINTS" -e "$VIVIT_MMACTION2_SRC"
elif [ -z "$(installed mmaction2)" ]; then
  $PIP install -q -c "$CONSTRAINTS" mmaction2==1.1.0
fi
# mmcv: the full mmcv or mmcv-lite, whichever is there; else mmcv-lite (no
# compiled ops, none of which vivit_mm uses).
if [ -z "$(installed mmcv)$(installed mmcv-lite)" ]; then
  $PIP install -q -c "$CONSTRAINTS" mmcv-lite
fi
EXTRAS=${VIVIT_EXTRAS:-tests}
MMACTION2=$(installed mmaction2)
case "$MMACTION2,$EXTRAS" in
  1.2.*,*tests*)
    # MMAction2 1.2 imports its multimodal models whenever transformers is
    # installed; they need transformers < 4.56 and timm (the tests extra
    # brings transformers).
    $PIP install -q "transformers>=4.44,<4.56" timm ;;
esac

# Path-based editable install (a .pth entry for this folder, not an import
# hook), so a folder named vivit_mm in the working directory, e.g. this
# clone seen from its parent folder, cannot shadow the package.
if ! $PIP install -q -c "$CONSTRAINTS" -e ".[$EXTRAS]" --config-settings editable_mode=compat; then
  echo "setup_env: this setuptools refuses the path-based editable mode; installing in its default mode (a folder named vivit_mm in the working directory can then shadow the package)."
  $PIP install -q -c "$CONSTRAINTS" -e ".[$EXTRAS]"
fi
if [ "$(installed mmaction2)" != "$MMACTION2" ]; then
  echo "setup_env: installing vivit_mm changed MMAction2 from $MMACTION2 to $(installed mmaction2)." >&2
  exit 1
fi
"$VENV/bin/python" -c "import vivit_mm, torch, mmaction; print('vivit_mm', vivit_mm.__version__, '| torch', torch.__version__, '| mmaction2', mmaction.__version__, 'at', mmaction.__path__[0])"
cat <<EOM
setup_env: done. Use the environment either way:
  $VENV/bin/python tools/run_demo.py
  source $VENV/bin/activate && python tools/run_demo.py
EOM
