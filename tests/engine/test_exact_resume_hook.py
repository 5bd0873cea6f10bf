"""``ExactResumeHook`` with ``ResumableSampler`` and ``ReproducibleDataset``:
a resumed run ends bit for bit where an uninterrupted one ends (after
``kill -9``, from end-of-epoch and mid-epoch checkpoints, with DataLoader
workers, with a random seed, on every rank of a distributed run), and its
state needs no allow-list entry."""
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.engine.conftest import close_workers, read_logs, toy_runner
from vivit_mm.convert.io import safe_load
from vivit_mm.utils.rng import apply_rng_state, capture_rng_state

# A hook that stops the run (until it is killed) at a given iteration, so
# the kill lands mid-epoch at a known point whatever the machine's speed.
PAUSE_HOOK = '''
import os, time
from mmengine.hooks import Hook
from mmaction.registry import HOOKS


@HOOKS.register_module()
class PauseForKill(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        at = os.environ.get('VIVIT_TEST_PAUSE_AT')
        if at is not None and runner.iter == int(at):
            open(os.path.join(runner.work_dir, 'paused'), 'w').close()
            time.sleep(300)
'''

# Tiny ViViT Model 2 on generated motion videos, with everything random
# that training has: dropout, drop path, head dropout, random temporal
# offsets, random crops, colour jitter, a shuffling sampler, AdamW, a
# warm-up + cosine schedule and gradient clipping.
CONFIG = '''
_base_ = ['{repo}/configs/_base_/models/vivit_m2.py']
custom_imports = dict(imports=['vivit_mm', 'pause_for_kill'],
                      allow_failed_imports=False)
default_scope = 'mmaction'
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=1,
                            num_heads=4, feedforward_channels=64),
                  img_size=32, num_frames=4, patch_size=8, tubelet_size=2,
                  num_temporal_layers=1, drop_rate=0.1, drop_path_rate=0.3),
    cls_head=dict(num_classes=4, in_channels=32, dropout_ratio=0.5))
data = '{data}'
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 36)),
    dict(type='RandomCrop', size=32),
    dict(type='VideoColorJitter', prob=0.8),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=1, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 32)),
    dict(type='CenterCrop', crop_size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset', ann_file=data + '/train.txt',
                 data_prefix=dict(video=data), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file=data + '/val.txt',
                 data_prefix=dict(video=data), pipeline=val_pipeline,
                 test_mode=True))
val_evaluator = dict(type='AccMetric')
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)
val_cfg = dict(type='ValLoop')
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3,
                                    weight_decay=0.05),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=2, eta_min=1e-5, by_epoch=True,
         begin=1, end=3, convert_to_iter_based=True)]
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='PauseForKill')]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
log_processor = dict(type='LogProcessor', window_size=1, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
'''


def _env(ws, **extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', **extra)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(ws), str(REPO)] + env.get('PYTHONPATH', '').split(os.pathsep))
    return env


def _train(ws, work_dir, *args, **env):
    return subprocess.Popen(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(ws / 'cfg.py'),
         '--work-dir', str(work_dir), *args], cwd=str(ws),
        env=_env(ws, **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _scalars(work_dir):
    """The logged scalars of every run in ``work_dir``, in time order."""
    rows = []
    for run in sorted(os.listdir(work_dir)):
        path = os.path.join(work_dir, run, 'vis_data', 'scalars.json')
        if os.path.isfile(path):
            with open(path) as f:
                rows += [json.loads(line) for line in f]
    return rows


@pytest.fixture(scope='module')
def kill_workspace(tmp_path_factory):
    from vivit_mm.datasets.synthetic import generate_dataset
    ws = tmp_path_factory.mktemp('kill')
    generate_dataset(str(ws / 'data'), num_train=3, num_val=1, num_test=0,
                     num_frames=8, width=40, height=32, seed=0)
    (ws / 'pause_for_kill.py').write_text(PAUSE_HOOK)
    (ws / 'cfg.py').write_text(CONFIG.format(repo=REPO, data=ws / 'data'))
    return ws


def test_kill_9_then_resume_ends_like_an_uninterrupted_run(kill_workspace):
    ws = kill_workspace
    # 12 videos, batch 4: 3 iterations per epoch. Run A is uninterrupted;
    # run B stops in epoch 2 after one of its batches (iteration 5) and is
    # killed with SIGKILL; epoch_1.pth is then its last checkpoint.
    run_a = _train(ws, ws / 'a')
    run_b = _train(ws, ws / 'b', VIVIT_TEST_PAUSE_AT='4')
    deadline = time.time() + 240
    while not (ws / 'b' / 'paused').exists():
        assert run_b.poll() is None, run_b.communicate()[0][-3000:]
        assert time.time() < deadline, 'run B never reached iteration 5'
        time.sleep(0.05)
    os.kill(run_b.pid, signal.SIGKILL)
    run_b.communicate()
    assert run_b.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (ws / 'b').glob('*.pth')) == ['epoch_1.pth']

    resumed = _train(ws, ws / 'b', '--resume')
    out_b = resumed.communicate(timeout=240)[0]
    out_a = run_a.communicate(timeout=240)[0]
    assert run_a.returncode == 0, out_a[-3000:]
    assert resumed.returncode == 0, out_b[-3000:]
    assert 'resumed epoch: 1, iter: 3' in out_b

    a = safe_load(ws / 'a' / 'epoch_3.pth')
    b = safe_load(ws / 'b' / 'epoch_3.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 9
    # Bit-identical weights, optimizer moments and schedules (CPU maths is
    # deterministic for identical inputs and thread counts).
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    for p, state in a['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(value, b['optimizer']['state'][p][name])
    assert a['param_schedulers'] == b['param_schedulers']
    # The same losses in every logged iteration after the resume, and the
    # same validation metrics at the end.
    rows_a, rows_b = _scalars(ws / 'a'), _scalars(ws / 'b')
    train_a = {r['step']: r['loss'] for r in rows_a if 'loss' in r}
    train_b = {r['step']: r['loss'] for r in rows_b if 'loss' in r}
    for step in range(4, 10):
        assert train_a[step] == train_b[step], step
    val_a = [r for r in rows_a if 'acc/top1' in r][-1]
    val_b = [r for r in rows_b if 'acc/top1' in r][-1]
    for key in ('acc/top1', 'acc/top5', 'acc/mean1'):
        assert val_a[key] == val_b[key]


# --------------------------------------------------------------------------
# In-process checks on a toy model (fast): DataLoader workers, mid-epoch
# checkpoints, seed=None (tests/engine/conftest.py: toy_runner).
def _resumed_equals_uninterrupted(tmp_path, workers, persistent):
    runners = [toy_runner(tmp_path / 'a', 4, workers, persistent),
               toy_runner(tmp_path / 'b', 2, workers, persistent)]
    for runner in runners:
        runner.train()
    runners.append(toy_runner(tmp_path / 'b', 4, workers, persistent,
                              resume=True,
                              load_from=str(tmp_path / 'b' / 'epoch_2.pth')))
    runners[-1].train()
    for runner in runners:
        close_workers(runner)
    return torch.equal(runners[0].model.fc.weight,
                       runners[-1].model.fc.weight)


@pytest.mark.parametrize('workers, persistent', [(0, False), (1, True),
                                                 (2, False)])
def test_epoch_resume_is_exact_with_and_without_workers(tmp_path, workers,
                                                        persistent):
    assert _resumed_equals_uninterrupted(tmp_path, workers, persistent)


@pytest.mark.parametrize('workers, persistent', [(0, False), (2, True)])
def test_mid_epoch_checkpoint_resumes_at_the_next_batch(tmp_path, workers,
                                                        persistent):
    # 10 samples, batch 3: 4 iterations per epoch; a checkpoint every 3
    # iterations, so iter_6.pth lies inside epoch 2. With workers too: the
    # augmentation is seeded per sample (ReproducibleDataset).
    ckpt = dict(type='AtomicCheckpointHook', interval=3, by_epoch=False)
    full = toy_runner(tmp_path / 'a', 3, workers, persistent,
                      checkpoint=ckpt)
    full.train()
    resumed = toy_runner(tmp_path / 'b', 3, workers, persistent,
                         checkpoint=ckpt, log_level='INFO', resume=True,
                         load_from=str(tmp_path / 'a' / 'iter_6.pth'))
    resumed.train()
    close_workers(full)
    close_workers(resumed)
    # Continues with batch 3 of epoch 2, bit for bit.
    assert resumed.iter == full.iter == 12
    assert torch.equal(full.model.fc.weight, resumed.model.fc.weight)
    assert 'continues after its first 2 of 4 batches' in read_logs(
        tmp_path / 'b')


def test_sampler_seed_restored_when_the_seed_was_random(tmp_path):
    first = toy_runner(tmp_path / 'a', 1, seed=None)
    first.train()
    again = toy_runner(tmp_path / 'b', 2, seed=None, resume=True,
                       load_from=str(tmp_path / 'a' / 'epoch_1.pth'))
    again.train()
    assert again.seed == first.seed
    assert again.train_dataloader.sampler.seed == \
        first.train_dataloader.sampler.seed


def test_warns_once_without_the_resumable_data_side(tmp_path):
    runner = toy_runner(tmp_path, 1, workers=1, reproducible=False,
                        log_level='INFO')
    runner.train()
    close_workers(runner)
    log = read_logs(tmp_path)
    assert log.count('ExactResumeHook: a resumed run may draw other') == 1
    assert "dataset=dict(type='ReproducibleDataset'" in log


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    np.random.randn()  # a cached Gaussian in NumPy's state
    state = capture_rng_state()
    expected = (random.random(), np.random.randn(), torch.rand(3))
    path = tmp_path / 'rng.pth'
    torch.save(dict(rng=state), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path)) == []
    apply_rng_state(safe_load(path)['rng'])
    got = (random.random(), np.random.randn(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert torch.equal(got[2], expected[2])


def test_checkpoint_with_reliability_state_needs_no_new_globals(tmp_path):
    runner = toy_runner(tmp_path, 1, hooks=(
        dict(type='WeightsOnlyCheckpointHook'), dict(type='ExactResumeHook'),
        dict(type='NonFiniteLossHook', action='skip')))
    runner.train()
    path = tmp_path / 'epoch_1.pth'
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path)) == []
    ckpt = safe_load(path)
    assert set(ckpt['exact_resume']['rng']) == {'python', 'numpy', 'torch',
                                                'cuda'}
    assert ckpt['exact_resume']['sampler_seed'] == \
        runner.train_dataloader.sampler.seed
    assert ckpt['nonfinite_loss'] == dict(skipped=0, consecutive=0)


# --------------------------------------------------------------------------
# Two processes (gloo): every rank resumes exactly from an end-of-epoch
# checkpoint, although only rank 0 writes it.
def _ddp_rank(rank, init_file, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2')
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    ddp = dict(launcher='pytorch',
               cfg=dict(model_wrapper_cfg=dict(type='DeviceAwareDDP')))
    try:
        runs = [toy_runner(os.path.join(out_dir, 'a'), 3, **ddp),
                toy_runner(os.path.join(out_dir, 'b'), 1, **ddp)]
        for runner in runs:
            runner.train()
        runs.append(toy_runner(
            os.path.join(out_dir, 'b'), 3, resume=True,
            load_from=os.path.join(out_dir, 'b', 'epoch_1.pth'), **ddp))
        runs[-1].train()
        torch.save([r.model.module.fc.weight.detach() for r in runs],
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_distributed_resume_is_exact_on_every_rank(tmp_path):
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_ddp_rank, args=(r, str(tmp_path / 'init'),
                                                 str(tmp_path)))
             for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    for rank in (0, 1):
        full, _, resumed = torch.load(tmp_path / f'rank{rank}.pth')
        assert torch.equal(full, resumed), rank
