"""NaN/inf losses stop the run before the update (or are skipped, counted
and bounded); ``--amp`` trains with dynamic loss scaling on a GPU and with
bf16 autocast (``BF16OptimWrapper``) without one."""
import glob
import math
import os
import re
from importlib.machinery import SourceFileLoader
from unittest.mock import patch

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = SourceFileLoader('vivit_train_tool',
                         os.path.join(REPO, 'tools', 'train.py')).load_module()
_RUNS = [0]


class _Model(BaseModel):
    """Linear classifier; a sample's ``scale`` multiplies its loss (nan or
    inf make the batch loss non-finite, 0 makes it contribute nothing)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.dtypes = []

    def forward(self, x, y, scale, mode='tensor'):
        out = self.fc(x)
        self.dtypes.append(out.dtype)
        if mode == 'loss':
            per = nn.functional.cross_entropy(out.float(), y,
                                              reduction='none')
            return dict(loss_cls=(per * scale).mean(),
                        acc=(out.argmax(1) == y).float().mean())
        return list(zip(out.argmax(1), y))


class _Data(Dataset):
    """8 samples in order (batch 2: 4 iterations per epoch); ``scales``
    maps sample index -> loss multiplier."""

    def __init__(self, scales=None):
        self.scales = dict(scales or {})

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(3, generator=g), y=torch.tensor(i % 2),
                    scale=torch.tensor(float(self.scales.get(i, 1.0))))


class _Weights(Hook):
    """Records fc.weight after every iteration."""

    def __init__(self):
        self.after = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = getattr(runner.model, 'module', runner.model)  # DDP
        self.after.append(model.fc.weight.detach().clone())


def _runner(tmp_path, scales, hook=None, epochs=2, optimizer=None,
            wrapper=None, **kw):
    _RUNS[0] += 1
    torch.manual_seed(0)
    weights = _Weights()
    hooks = [weights] + ([hook] if hook is not None else [])
    optim = dict(type=wrapper or 'OptimWrapper', optimizer=optimizer or dict(
        type='SGD', lr=0.1, momentum=0.9))
    runner = Runner(
        _Model(), work_dir=str(tmp_path), train_cfg=dict(by_epoch=True,
                                                         max_epochs=epochs),
        train_dataloader=dict(dataset=_Data(scales), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=optim, custom_hooks=hooks, default_scope='mmaction',
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        randomness=dict(seed=0), log_level='INFO',
        experiment_name=f'nonfinite_{os.getpid()}_{_RUNS[0]}', **kw)
    return runner, weights


def _log(tmp_path):
    return ''.join(open(f).read() for f in glob.glob(
        str(tmp_path / '**' / '*.log'), recursive=True))


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_nonfinite_loss_stops_before_the_update(tmp_path, bad):
    # Sample 5 is in the 3rd batch (iteration 3 of epoch 1).
    runner, weights = _runner(tmp_path, {5: bad},
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


def test_without_the_hook_nan_silently_poisons_the_weights(tmp_path):
    runner, weights = _runner(tmp_path, {5: math.nan})
    runner.train()  # no error at all
    assert torch.isnan(weights.after[2]).all()
    assert torch.isnan(runner.model.fc.weight).all()


def test_skip_drops_exactly_that_update(tmp_path):
    # Plain SGD (no momentum or weight decay): a batch whose loss is
    # zero-weighted leaves the weights unchanged, so the run that skips the
    # NaN batch must equal the run where that batch contributes nothing.
    sgd = dict(type='SGD', lr=0.1)
    nan_run, nan_w = _runner(tmp_path / 'nan', {4: math.nan, 5: 1.0},
                             dict(type='NonFiniteLossHook', action='skip'),
                             optimizer=sgd)
    nan_run.train()
    ref_run, ref_w = _runner(tmp_path / 'ref', {4: 0.0, 5: 0.0},
                             optimizer=sgd)
    ref_run.train()
    assert torch.equal(nan_w.after[2], nan_w.after[1])  # skipped
    for a, b in zip(nan_w.after, ref_w.after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    hook = next(h for h in nan_run.hooks if type(h).__name__ ==
                'NonFiniteLossHook')
    assert hook.skipped == 2  # once per epoch
    log = _log(tmp_path / 'nan')
    assert len(re.findall(r'iteration skipped \(1 in a row', log)) == 2
    assert 'skipped 1 iterations with a non-finite loss in epoch 1' in log
    assert 'skipped 1 iterations with a non-finite loss in epoch 2' in log


def test_skip_stops_after_max_consecutive(tmp_path):
    runner, weights = _runner(
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
    runner, _ = _runner(tmp_path, {1: math.nan},
                        dict(type='NonFiniteLossHook', action='skip'),
                        epochs=1)
    runner.train()
    from vivit_mm.utils.checkpoint import safe_load
    ckpt = safe_load(tmp_path / 'epoch_1.pth')
    assert ckpt['nonfinite_loss'] == dict(skipped=1, consecutive=0)
    resumed, _ = _runner(tmp_path, {1: math.nan},
                         dict(type='NonFiniteLossHook', action='skip'),
                         epochs=2, resume=True,
                         load_from=str(tmp_path / 'epoch_1.pth'))
    resumed.train()
    hook = next(h for h in resumed.hooks if type(h).__name__ ==
                'NonFiniteLossHook')
    assert hook.skipped == 2


def test_skip_refuses_gradient_accumulation(tmp_path):
    runner, _ = _runner(tmp_path, {}, dict(type='NonFiniteLossHook',
                                           action='skip'))
    runner.optim_wrapper = dict(type='OptimWrapper', accumulative_counts=2,
                                optimizer=dict(type='SGD', lr=0.1))
    with pytest.raises(ValueError, match='accumulative_counts=2'):
        runner.train()


# --------------------------------------------------------------------------
# Mixed precision.
def _train_configs():
    return sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')))


def test_amp_flag_without_cuda_uses_the_bf16_wrapper():
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'vivit_m2_k400.py'))
    with patch('torch.cuda.is_available', return_value=False):
        cfg = TRAIN.merge_args(cfg, TRAIN.parse_args(['x.py', '--amp']))
    assert cfg.optim_wrapper.type == 'BF16OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    # a config that already asks for the GPU wrapper is switched too
    cfg = Config.fromfile(os.path.join(REPO, 'configs',
                                       'vivit_m2_k400_amp.py'))
    with patch('torch.cuda.is_available', return_value=False):
        cfg = TRAIN.merge_args(cfg, TRAIN.parse_args(['x.py', '--amp']))
    assert cfg.optim_wrapper.type == 'BF16OptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper


def test_bf16_wrapper_trains_on_cpu_with_the_nonfinite_hook(tmp_path):
    """BF16OptimWrapper builds without CUDA, autocasts the forward to bf16,
    keeps float32 parameters, and NonFiniteLossHook wraps it like any
    OptimWrapper."""
    runner, weights = _runner(tmp_path, {5: math.nan},
                              dict(type='NonFiniteLossHook', action='skip'),
                              wrapper='BF16OptimWrapper')
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'BF16OptimWrapper'
    assert set(runner.model.dtypes) == {torch.bfloat16}  # every forward
    assert runner.model.fc.weight.dtype == torch.float32
    assert torch.equal(weights.after[2], weights.after[1])  # skipped
    assert not torch.equal(weights.after[3], weights.after[2])
    assert torch.isfinite(runner.model.fc.weight).all()
    # the same run in float32 ends elsewhere: autocast changed the numbers
    fp32, fp32_weights = _runner(tmp_path / 'fp32', {5: math.nan},
                                 dict(type='NonFiniteLossHook',
                                      action='skip'))
    fp32.train()
    assert set(fp32.model.dtypes) == {torch.float32}
    assert not torch.equal(fp32_weights.after[-1], weights.after[-1])
    torch.testing.assert_close(fp32_weights.after[-1], weights.after[-1],
                               rtol=0.05, atol=0.02)


@pytest.mark.parametrize('config', [os.path.basename(p)
                                    for p in _train_configs()])
def test_every_config_trains_fp16_with_dynamic_loss_scaling(config):
    """``--amp`` (and any config that already uses AmpOptimWrapper) builds
    mmengine's AmpOptimWrapper with a dynamic GradScaler."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(os.path.join(REPO, 'configs', config))
    with patch('torch.cuda.is_available', return_value=True):
        cfg = TRAIN.merge_args(cfg, TRAIN.parse_args(['x.py', '--amp']))
    wrapper_cfg = cfg.optim_wrapper
    assert wrapper_cfg.type == 'AmpOptimWrapper'
    assert wrapper_cfg.get('loss_scale', 'dynamic') == 'dynamic'
    model = nn.Linear(2, 2)
    amp_module = 'mmengine.optim.optimizer.amp_optimizer_wrapper'
    # Build it as on a GPU machine (GradScaler disables itself without
    # CUDA, and mmengine's wrapper refuses to build).
    with patch(f'{amp_module}.is_cuda_available', return_value=True), \
            patch('torch.cuda.is_available', return_value=True):
        wrapper = build_optim_wrapper(model, wrapper_cfg)
        scaler = wrapper.loss_scaler
        assert isinstance(scaler, torch.amp.GradScaler)
        assert scaler.is_enabled()
        # Dynamic: starts at 2**16, halves on overflow, doubles after 2000
        # finite steps (torch's defaults; a fixed scale would not grow).
        assert scaler.get_scale() == 2.0**16
        assert scaler.get_backoff_factor() == 0.5
        assert scaler.get_growth_factor() == 2.0
        assert scaler.get_growth_interval() == 2000
    assert wrapper._scale_update_param is None


def test_nonfinite_hook_with_amp_wrapper_bf16_on_cpu(tmp_path):
    """The hook wraps AmpOptimWrapper too; bf16 autocast runs on the CPU
    (mmengine's availability check is patched; its GradScaler disables
    itself without CUDA)."""
    amp_module = 'mmengine.optim.optimizer.amp_optimizer_wrapper'
    runner, weights = _runner(tmp_path, {5: math.nan},
                              dict(type='NonFiniteLossHook', action='skip'),
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
        runner, weights = _runner(
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
    import multiprocessing as mp
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
