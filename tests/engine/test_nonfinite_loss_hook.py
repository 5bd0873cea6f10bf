"""``NonFiniteLossHook``: a NaN/inf loss stops the run before the update, or
(``action='skip'``) its update is dropped, counted and bounded; the ranks
of a distributed run agree."""
import math
import multiprocessing as mp
import os
import re
from unittest.mock import patch

import pytest
import torch

from tests.engine.conftest import loss_runner, read_logs
from vivit_mm.convert.io import safe_load


def _hook(runner):
    return next(h for h in runner.hooks
                if type(h).__name__ == 'NonFiniteLossHook')


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_nonfinite_loss_stops_before_the_update(tmp_path, bad):
    # Sample 5 is in the 3rd batch (iteration 3 of epoch 1).
    runner, weights = loss_runner(tmp_path, {5: bad},
                                  dict(type='NonFiniteLossHook'))
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    msg = str(info.value)
    assert 'epoch 1, iteration 3 (batch 3 of 4)' in msg
    assert re.search(r'loss=(nan|inf)', msg) and 'loss_cls=' in msg
    assert 'acc=' in msg and 'not applied' in msg
    assert "action='skip'" in msg  # says how to skip instead
    assert len(weights.after) == 2  # iterations 1 and 2 completed
    # The model still holds the weights of iteration 2, all finite.
    assert torch.equal(runner.model.fc.weight, weights.after[-1])
    assert torch.isfinite(runner.model.fc.weight).all()


def test_skip_drops_exactly_that_update(tmp_path):
    # Plain SGD (no momentum or weight decay): a batch whose loss is
    # zero-weighted leaves the weights unchanged, so the run that skips the
    # NaN batch must equal the run where that batch contributes nothing.
    sgd = dict(type='SGD', lr=0.1)
    nan_run, nan_w = loss_runner(tmp_path / 'nan', {4: math.nan, 5: 1.0},
                                 dict(type='NonFiniteLossHook',
                                      action='skip'), optimizer=sgd)
    nan_run.train()
    ref_run, ref_w = loss_runner(tmp_path / 'ref', {4: 0.0, 5: 0.0},
                                 optimizer=sgd)
    ref_run.train()
    assert torch.equal(nan_w.after[2], nan_w.after[1])  # skipped
    for a, b in zip(nan_w.after, ref_w.after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert _hook(nan_run).skipped == 2  # once per epoch
    log = read_logs(tmp_path / 'nan')
    assert len(re.findall(r'iteration skipped \(1 in a row', log)) == 2
    assert 'skipped 1 iterations with a non-finite loss in epoch 1' in log
    assert 'skipped 1 iterations with a non-finite loss in epoch 2' in log


def test_skip_leaves_momentum_and_step_counts_alone(tmp_path):
    # Adam: a dropped step must not advance the step count nor the moments.
    adam = dict(type='Adam', lr=0.01)
    runner, weights = loss_runner(tmp_path, {4: math.nan},
                                  dict(type='NonFiniteLossHook',
                                       action='skip'),
                                  epochs=1, optimizer=adam)
    runner.train()
    state = runner.optim_wrapper.optimizer.state[runner.model.fc.weight]
    assert int(state['step']) == 3  # 4 iterations, one dropped
    assert torch.equal(weights.after[2], weights.after[1])


def test_skip_stops_after_max_consecutive(tmp_path):
    runner, weights = loss_runner(
        tmp_path, {i: math.nan for i in range(2, 8)},
        dict(type='NonFiniteLossHook', action='skip', max_consecutive=2))
    with pytest.raises(FloatingPointError,
                       match=r'3th non-finite loss in a row '
                       r'\(max_consecutive=2\)'):
        runner.train()
    assert len(weights.after) == 3  # iteration 1 trained, 2 and 3 skipped
    assert torch.equal(weights.after[1], weights.after[0])
    assert torch.equal(weights.after[2], weights.after[0])


def test_skip_count_survives_a_resume(tmp_path):
    runner, _ = loss_runner(tmp_path, {1: math.nan},
                            dict(type='NonFiniteLossHook', action='skip'),
                            epochs=1)
    runner.train()
    ckpt = safe_load(tmp_path / 'epoch_1.pth')
    assert ckpt['nonfinite_loss'] == dict(skipped=1, consecutive=0)
    resumed, _ = loss_runner(tmp_path, {1: math.nan},
                             dict(type='NonFiniteLossHook', action='skip'),
                             epochs=2, resume=True,
                             load_from=str(tmp_path / 'epoch_1.pth'))
    resumed.train()
    assert _hook(resumed).skipped == 2


def test_skip_refuses_gradient_accumulation(tmp_path):
    # As Runner.from_cfg builds it: the hook reads the config.
    wrapper = dict(type='OptimWrapper', accumulative_counts=2,
                   optimizer=dict(type='SGD', lr=0.1))
    runner, weights = loss_runner(tmp_path, {},
                                  dict(type='NonFiniteLossHook',
                                       action='skip'),
                                  cfg=dict(optim_wrapper=wrapper))
    runner.optim_wrapper = wrapper
    with pytest.raises(ValueError, match='accumulative_counts=2'):
        runner.train()
    assert weights.after == []


def test_hooks_are_removed_after_training(tmp_path):
    runner, _ = loss_runner(tmp_path, {}, dict(type='NonFiniteLossHook',
                                               action='skip'), epochs=1)
    runner.train()
    assert not runner.model._forward_hooks
    assert not runner.model._forward_hooks_with_kwargs
    assert not runner.optim_wrapper.optimizer._optimizer_step_pre_hooks


def test_nonfinite_hook_with_amp_wrapper_bf16_on_cpu(tmp_path):
    """The hook works with AmpOptimWrapper too; bf16 autocast runs on the
    CPU (mmengine's availability check is patched; its GradScaler disables
    itself without CUDA)."""
    amp_module = 'mmengine.optim.optimizer.amp_optimizer_wrapper'
    runner, weights = loss_runner(tmp_path, {5: math.nan},
                                  dict(type='NonFiniteLossHook',
                                       action='skip'),
                                  wrapper='AmpOptimWrapper')
    runner.optim_wrapper['dtype'] = 'bfloat16'
    with patch(f'{amp_module}.is_cuda_available', return_value=True):
        runner.train()
    assert torch.bfloat16 in runner.model.dtypes  # autocast was active
    assert torch.equal(weights.after[2], weights.after[1])  # skipped
    assert not torch.equal(weights.after[3], weights.after[2])
    assert torch.isfinite(runner.model.fc.weight).all()


# --------------------------------------------------------------------------
# Distributed: the ranks agree (no hang when only one rank sees a NaN).
def _ddp_rank(rank, init_file, action, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2')
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    try:
        # 8 samples, batch 2 per rank: sample 5 makes rank 1's second
        # batch NaN, rank 0's is finite.
        runner, weights = loss_runner(
            os.path.join(out_dir, f'rank{rank}'), {5: math.nan},
            dict(type='NonFiniteLossHook', action=action), epochs=1,
            launcher='pytorch', cfg=dict(model_wrapper_cfg=dict(
                type='DeviceAwareDDP')),
            optimizer=dict(type='SGD', lr=0.1))
        try:
            runner.train()
            result = 'done'
        except FloatingPointError as e:
            result = str(e)
        torch.save(dict(result=result, weights=weights.after),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('action', ['skip', 'stop'])
def test_ranks_agree_on_a_nan_seen_by_one_rank(tmp_path, action):
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_ddp_rank, args=(
        r, str(tmp_path / 'init'), action, str(tmp_path))) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1))
    if action == 'skip':
        assert r0['result'] == r1['result'] == 'done'
        for w in (r0['weights'], r1['weights']):
            assert len(w) == 2 and torch.equal(w[1], w[0])  # 2nd skipped
        assert torch.equal(r0['weights'][1], r1['weights'][1])
    else:
        assert 'non-finite on another rank' in r0['result']
        assert 'loss=nan' in r1['result']
        assert len(r0['weights']) == len(r1['weights']) == 1
