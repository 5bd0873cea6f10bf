"""tools/vivit_cli/dist.py on a machine without CUDA: a slurm launch
becomes a gloo process group from slurm's variables, which mmengine's
``init_dist('slurm', backend='gloo')`` cannot do there (it calls
``torch.cuda.set_device``); each run in a fresh interpreter."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason='the CPU path: no CUDA device')

SETUP = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch.distributed as dist
from mmengine.config import Config
from vivit_cli.dist import setup_distributed
cfg = Config(dict(env_cfg=dict(dist_cfg=dict(timeout=60))))
backend = setup_distributed(cfg, 'slurm')
print(json.dumps(dict(backend=backend, group=dist.get_backend(),
                      rank=dist.get_rank(), world=dist.get_world_size(),
                      wrapper=cfg.model_wrapper_cfg.type,
                      dist_cfg=cfg.env_cfg.dist_cfg.to_dict())))
dist.destroy_process_group()
'''

MMENGINE = r'''
from mmengine.dist import init_dist
try:
    init_dist('slurm', backend='gloo')
except Exception as e:
    print(type(e).__name__)
else:
    print('initialised')
'''


def _slurm_env():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return dict(os.environ, SLURM_PROCID='0', SLURM_NTASKS='1',
                SLURM_NODELIST='localhost', SLURM_LOCALID='0',
                MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))


def _run(code, *args):
    proc = subprocess.run([sys.executable, '-c', code, *args],
                          env=_slurm_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_slurm_launch_without_cuda_is_a_gloo_group():
    out = json.loads(_run(SETUP, str(REPO / 'tools')))
    assert out == dict(backend='gloo', group='gloo', rank=0, world=1,
                       wrapper='DeviceAwareDDP',
                       dist_cfg=dict(timeout=60, backend='gloo'))


def test_mmengine_slurm_launcher_still_needs_cuda():
    # When this fails, mmengine's init_dist serves a CPU machine and
    # vivit_cli.dist._slurm_env can go.
    assert _run(MMENGINE) == 'RuntimeError'
