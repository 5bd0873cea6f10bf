"""The thread and worker choice: CPU affinity, cgroup quotas and an
explicit OMP_NUM_THREADS decide it; the config records it; a fresh process
pinned to one CPU chooses one thread."""
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.conftest import REPO
from vivit_mm.utils import threads
from vivit_mm.utils.threads import (CpuInfo, available_cpus,
                                    cgroup_cpu_quota, choose_threads,
                                    configure_threads, omp_num_threads)

TRAIN = dict(train_dataloader=4)
NO_ENV = {}


def _cgroup(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize('files, quota', [
    ({'cpu.max': 'max 100000\n'}, None),
    ({'cpu.max': '150000 100000\n'}, 1.5),
    ({'cpu.max': '300000\n'}, 3.0),
    ({'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000'},
     None),
    ({'cpu/cpu.cfs_quota_us': '50000\n', 'cpu/cpu.cfs_period_us': '100000'},
     0.5),
    ({}, None),
])
def test_cgroup_quota_v2_and_v1(tmp_path, files, quota):
    assert cgroup_cpu_quota(_cgroup(tmp_path, files)) == quota


def test_unparsable_cgroup_quota_is_named(tmp_path):
    root = _cgroup(tmp_path, {'cpu.max': 'lots 100000'})
    with pytest.raises(ValueError, match='cgroup CPU quota.*lots'):
        cgroup_cpu_quota(root)


@pytest.mark.parametrize('affinity, files, cpus', [
    ({0, 1, 2, 3}, {'cpu.max': '150000 100000'}, 2),   # quota rounded up
    ({0, 1, 2, 3}, {'cpu.max': '50000 100000'}, 1),    # at least 1
    ({0, 1}, {'cpu.max': '800000 100000'}, 2),         # affinity is smaller
    ({3}, {}, 1),
])
def test_available_cpus_is_affinity_capped_by_quota(monkeypatch, tmp_path,
                                                    affinity, files, cpus):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(affinity))
    info = available_cpus(_cgroup(tmp_path, files))
    assert info.cpus == cpus and info.affinity == len(affinity)


@pytest.mark.parametrize('value, threads_', [('', None), ('3', 3),
                                             (' 2 ', 2), ('4,2', 4)])
def test_omp_num_threads_parsed(value, threads_):
    assert omp_num_threads({'OMP_NUM_THREADS': value}) == threads_


@pytest.mark.parametrize('value', ['abc', '0', '-2', '2.5'])
def test_bad_omp_num_threads_is_a_clear_error(value):
    with pytest.raises(ValueError, match='OMP_NUM_THREADS.*positive integer'):
        omp_num_threads({'OMP_NUM_THREADS': value})


@pytest.mark.parametrize('cpus, asked, intra, workers', [
    (2, 1, 1, 1),    # the demo on 2 CPUs: one worker, one torch thread
    (2, 8, 1, 2),    # 8 workers asked on 2 CPUs: capped
    (16, 4, 12, 4),
    (1, 3, 1, 1),
    (4, 0, 4, 0),    # no workers: torch gets every CPU
])
def test_auto_choice_fits_the_cpus(cpus, asked, intra, workers):
    choice = choose_threads(CpuInfo(cpus, cpus), dict(train_dataloader=asked),
                            NO_ENV)
    assert choice.intra_op_threads == intra
    assert choice.num_workers == dict(train_dataloader=(asked, workers))
    assert choice.source == 'auto'


def test_omp_num_threads_wins_over_config_and_auto():
    env = {'OMP_NUM_THREADS': '3'}
    choice = choose_threads(CpuInfo(2, 2), TRAIN, env, intra_op_threads=2)
    assert (choice.intra_op_threads, choice.source) == (3, 'OMP_NUM_THREADS')
    assert 'set by OMP_NUM_THREADS' in choice.describe()
    pinned = choose_threads(CpuInfo(2, 2), TRAIN, NO_ENV, intra_op_threads=2)
    assert (pinned.intra_op_threads, pinned.source) == (
        2, 'env_cfg.cpu_threads')


def test_max_workers_and_bad_settings():
    choice = choose_threads(CpuInfo(8, 8), TRAIN, NO_ENV, max_workers=3)
    assert choice.num_workers['train_dataloader'] == (4, 3)
    assert choice.intra_op_threads == 5
    with pytest.raises(ValueError, match='intra_op_threads'):
        choose_threads(CpuInfo(2, 2), TRAIN, NO_ENV, intra_op_threads=0)
    with pytest.raises(ValueError, match='train_dataloader.num_workers'):
        choose_threads(CpuInfo(2, 2), dict(train_dataloader=-1), NO_ENV)


def test_distributed_ranks_share_the_cpus():
    choice = choose_threads(CpuInfo(8, 8), TRAIN, NO_ENV,
                            processes=threads.local_processes(
                                {'LOCAL_WORLD_SIZE': '4'}))
    assert choice.intra_op_threads == 1  # 2 CPUs a rank, 2 workers
    assert choice.num_workers['train_dataloader'] == (4, 2)
    assert 'shared by 4 processes' in choice.describe()
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE='x'"):
        threads.local_processes({'LOCAL_WORLD_SIZE': 'x'})


def _demo_cfg():
    return Config.fromfile(str(REPO / 'configs' / 'vivit_m2_synthetic.py'))


def test_configure_records_the_choice_in_env_cfg(monkeypatch, tmp_path):
    import torch
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1})
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: calls.append(n))
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 4)
    calls = []
    cfg = _demo_cfg()
    cfg.train_dataloader.num_workers = 8
    choice = configure_threads(cfg, environ=NO_ENV, root=str(tmp_path))
    assert calls == [1]
    assert cfg.train_dataloader.num_workers == 2
    assert cfg.env_cfg.cpu_threads_chosen == dict(
        cpus=2, intra_op_threads=1, worker_threads=1, source='auto')
    assert cfg.env_cfg.mp_cfg.opencv_num_threads == 0  # untouched
    line = choice.describe()
    assert line.startswith('vivit_mm threads: 2 CPUs available')
    assert 'train 2 (config 8)' in line
    # the dump carries it, and a dumped config chooses again
    dumped = Config.fromstring(cfg.pretty_text, '.py')
    assert dumped.env_cfg.cpu_threads_chosen.intra_op_threads == 1
    configure_threads(dumped, environ={'OMP_NUM_THREADS': '2'},
                      root=str(tmp_path))
    assert dumped.env_cfg.cpu_threads_chosen.source == 'OMP_NUM_THREADS'


def test_config_settings_are_checked(tmp_path):
    cfg = _demo_cfg()
    cfg.env_cfg.cpu_threads = dict(intra_threads=2)
    with pytest.raises(ValueError, match="unknown keys \\['intra_threads'\\]"):
        configure_threads(cfg, environ=NO_ENV, root=str(tmp_path))


def test_no_workers_left_turns_persistent_workers_off(monkeypatch, tmp_path):
    cfg = _demo_cfg()
    cfg.env_cfg.cpu_threads = dict(max_workers=0)
    with pytest.raises(ValueError, match='max_workers'):
        configure_threads(cfg, environ=NO_ENV, root=str(tmp_path))
    choice = threads.ThreadChoice(
        cpu=CpuInfo(1, 1), intra_op_threads=1,
        num_workers=dict(train_dataloader=(1, 0)))
    threads.record_choice(cfg, choice)
    assert cfg.train_dataloader.persistent_workers is False


PINNED = r'''
import json, os, sys
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
from vivit_mm.utils.threads import available_cpus, choose_threads
choice = choose_threads(available_cpus(), dict(train_dataloader=2))
print(json.dumps(dict(cpus=choice.cpu.cpus, intra=choice.intra_op_threads,
                      workers=choice.num_workers['train_dataloader'][1])))
'''


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'),
                    reason='needs os.sched_setaffinity')
def test_a_process_pinned_to_one_cpu_chooses_one_thread():
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    proc = subprocess.run([sys.executable, '-c', PINNED], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == dict(
        cpus=1, intra=1, workers=1)


THREAD_VARS = ('OMP_', 'GOMP_', 'KMP_', 'MKL_', 'OPENBLAS_')
IMPORT_PROBE = r'''
import os
import torch
threads_vars = lambda: {k: v for k, v in os.environ.items()
                        if k.startswith(%r)}
before = torch.get_num_threads(), threads_vars()
import vivit_mm, vivit_mm.utils.threads
assert (torch.get_num_threads(), threads_vars()) == before, before
''' % (THREAD_VARS,)


def test_import_changes_no_threads():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(THREAD_VARS)}
    proc = subprocess.run([sys.executable, '-c', IMPORT_PROBE], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
