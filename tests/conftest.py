import os
import sys
from pathlib import Path

import pytest
import torch

# Two cores in CI: keep torch from oversubscribing them when pytest-xdist
# runs several workers.
torch.set_num_threads(max(1, int(os.environ.get('VIVIT_TEST_THREADS', '2'))))

#: The repository root; tests build every path from it, never from the cwd.
REPO = Path(__file__).resolve().parents[1]
# The command-line tools' helpers (tools/vivit_cli) and the measuring code
# of the benchmark tools (tools/analysis_tools/vivit_bench) are not part of
# the installed package.
sys.path.append(str(REPO / 'tools'))
sys.path.append(str(REPO / 'tools' / 'analysis_tools'))

import vivit_mm  # noqa: E402,F401  (registers the modules)

TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=4,
                 feedforward_channels=64)


@pytest.fixture
def tiny_cfg():
    """A tiny backbone config: 8 frames of 32x32, 8x8 patches, t=2."""
    return dict(arch=dict(TINY_ARCH), img_size=32, num_frames=8,
                patch_size=8, tubelet_size=2)


@pytest.fixture(scope='session')
def repo() -> Path:
    """The repository root."""
    return REPO
