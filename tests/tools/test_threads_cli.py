"""The tools' thread set-up (tools/vivit_cli/threads.py): OpenMP's wait
policy before torch loads (an explicit one wins), and a bad OMP_NUM_THREADS
stops the tool with the message."""
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.conftest import REPO
from vivit_cli.threads import prepare_openmp, setup_threads

PROBE = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
from vivit_cli.threads import prepare_openmp
added = prepare_openmp()
import torch
print(json.dumps(dict(added=added,
                      policy=os.environ.get('OMP_WAIT_POLICY'))))
'''


@pytest.mark.parametrize('policy, added', [(None, {'OMP_WAIT_POLICY':
                                                    'PASSIVE'}),
                                           ('ACTIVE', {})])
def test_prepare_openmp_before_torch(policy, added):
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    if policy:
        env['OMP_WAIT_POLICY'] = policy
    proc = subprocess.run([sys.executable, '-c', PROBE, str(REPO / 'tools')],
                          env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out['added'] == added
    assert out['policy'] == (policy or 'PASSIVE')


def test_prepare_openmp_does_nothing_once_torch_is_loaded():
    env = {}
    assert 'torch' in sys.modules  # loaded by the test session
    assert prepare_openmp(env) == {} and env == {}


def test_bad_omp_num_threads_stops_the_tool(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', 'abc')
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m2_synthetic.py'))
    with pytest.raises(SystemExit, match="error: OMP_NUM_THREADS='abc' is "
                       'not a positive integer'):
        setup_threads(cfg)


def test_explicit_omp_num_threads_is_recorded(monkeypatch):
    import torch
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    before = torch.get_num_threads()
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m2_synthetic.py'))
    try:
        choice = setup_threads(cfg)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert choice.source == 'OMP_NUM_THREADS'
    assert cfg.env_cfg.cpu_threads_chosen.intra_op_threads == 1


def test_inference_threads_take_every_cpu_unless_omp_says(monkeypatch):
    """demo/demo.py's choice: no data workers, so torch gets the CPUs the
    process is given (affinity), and OMP_NUM_THREADS wins."""
    import torch

    from vivit_cli.threads import setup_inference_threads
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
        monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2})
        choice = setup_inference_threads()
        assert choice.intra_op_threads == torch.get_num_threads()
        assert choice.intra_op_threads == min(3, choice.cpu.cpus) \
            and choice.cpu.affinity == 3
        assert 'data workers none' in choice.describe()
        monkeypatch.setenv('OMP_NUM_THREADS', '1')
        assert setup_inference_threads().intra_op_threads == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setenv('OMP_NUM_THREADS', '0')
        with pytest.raises(SystemExit, match='OMP_NUM_THREADS'):
            setup_inference_threads()
    finally:
        torch.set_num_threads(before)
