"""What ``tools/train.py``'s reliability flags do to a config: ``--amp``
(dynamic fp16 loss scaling with CUDA, ``BF16OptimWrapper`` without),
``--resume`` without a path, ``--skip-bad-videos``, ``--nonfinite-loss``,
``--no-exact-resume``, and the hooks added to configs without them."""
from importlib.machinery import SourceFileLoader
from unittest.mock import patch

import pytest
import torch
from mmengine.config import Config
from torch import nn

from tests.conftest import REPO
from vivit_cli.run_config import apply_reliability_defaults, hook_types

TRAIN = SourceFileLoader('vivit_train_tool',
                         str(REPO / 'tools' / 'train.py')).load_module()
K400_M2 = REPO / 'configs' / 'vivit_m2_k400.py'


def _merge(cfg, *argv):
    return TRAIN.merge_args(cfg, TRAIN.parse_args(['x.py', *argv]))


def test_amp_flag_without_cuda_uses_the_bf16_wrapper():
    cfg = Config.fromfile(str(K400_M2))
    with patch('torch.cuda.is_available', return_value=False):
        cfg = _merge(cfg, '--amp')
    assert cfg.optim_wrapper.type == 'BF16OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    # a config that already asks for the GPU wrapper is switched too
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m2_k400_amp.py'))
    with patch('torch.cuda.is_available', return_value=False):
        cfg = _merge(cfg, '--amp')
    assert cfg.optim_wrapper.type == 'BF16OptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper


@pytest.mark.parametrize('config', sorted(
    p.name for p in (REPO / 'configs').glob('*.py')))
def test_every_config_trains_fp16_with_dynamic_loss_scaling(config):
    """``--amp`` (and any config that already uses AmpOptimWrapper) builds
    mmengine's AmpOptimWrapper with a dynamic GradScaler."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(REPO / 'configs' / config))
    with patch('torch.cuda.is_available', return_value=True):
        cfg = _merge(cfg, '--amp')
    wrapper_cfg = cfg.optim_wrapper
    assert wrapper_cfg.type == 'AmpOptimWrapper'
    assert wrapper_cfg.get('loss_scale', 'dynamic') == 'dynamic'
    model = nn.Linear(2, 2)
    if wrapper_cfg.get('constructor'):  # layer decay: needs a backbone
        from vivit_mm.models import ViViTM1
        model = nn.ModuleDict(dict(backbone=ViViTM1(
            arch=dict(embed_dims=8, num_layers=1, num_heads=2,
                      feedforward_channels=8), img_size=8, num_frames=2,
            patch_size=8), head=model))
    amp_module = 'mmengine.optim.optimizer.amp_optimizer_wrapper'
    # Build it as on a GPU machine (GradScaler disables itself without
    # CUDA, and mmengine's wrapper refuses to build).
    with patch(f'{amp_module}.is_cuda_available', return_value=True), \
            patch('torch.cuda.is_available', return_value=True), \
            DefaultScope.overwrite_default_scope('mmaction'):
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


def _bare_config():
    """A training config that names none of the reliability machinery."""
    return Config(dict(
        work_dir='unused',
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        train_dataloader=dict(
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='VideoDataset', ann_file='a.txt',
                         pipeline=[])),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))


def test_train_tool_adds_the_reliability_hooks():
    cfg = _merge(Config.fromfile(str(K400_M2)))
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    types = hook_types(cfg)
    for hook in ('ExactResumeHook', 'NonFiniteLossHook',
                 'WeightsOnlyCheckpointHook'):
        assert types.count(hook) == 1, hook
    cfg = _merge(Config.fromfile(str(K400_M2)), '--no-exact-resume')
    assert 'ExactResumeHook' not in hook_types(cfg)
    # A config without them gets them, with the sampler and the wrapper
    # that make a resume exact.
    cfg = _merge(_bare_config())
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert {'ExactResumeHook', 'NonFiniteLossHook',
            'WeightsOnlyCheckpointHook'} <= set(hook_types(cfg))
    assert cfg.train_dataloader.sampler.type == 'ResumableSampler'
    assert cfg.train_dataloader.dataset.type == 'ReproducibleDataset'
    assert cfg.train_dataloader.dataset.dataset.type == 'VideoDataset'


def test_nonfinite_loss_flag_sets_the_action():
    cfg = _merge(Config.fromfile(str(K400_M2)), '--nonfinite-loss', 'skip')
    assert cfg.default_hooks.nonfinite_loss.action == 'skip'
    with pytest.raises(ValueError, match="nonfinite_loss must be None, "
                       "'stop' or 'skip', got 'maybe'"):
        apply_reliability_defaults(Config(dict()), nonfinite_loss='maybe')
    with pytest.raises(SystemExit):
        TRAIN.parse_args(['x.py', '--nonfinite-loss', 'maybe'])


def test_skip_bad_videos_option_wraps_the_training_set():
    cfg = Config.fromfile(str(K400_M2))
    original = cfg.train_dataloader.dataset.to_dict()
    merged = _merge(cfg, '--skip-bad-videos')
    assert merged.train_dataloader.dataset.type == 'SkipBadVideosDataset'
    assert merged.train_dataloader.dataset.dataset.to_dict() == original
    assert 'SkippedVideosHook' in hook_types(merged)
    assert merged.val_dataloader.dataset.type == 'VideoDataset'


def test_resume_without_a_path_passes_over_a_truncated_checkpoint(
        tmp_path):
    good = tmp_path / 'epoch_2.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), good)
    bad = tmp_path / 'epoch_3.pth'
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    cfg = Config(dict(work_dir=str(tmp_path), load_from='init.pth',
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))
    merged = _merge(cfg, '--resume')
    assert merged.resume and merged.load_from == str(good)
    # An empty work dir starts afresh and keeps the config's load_from.
    cfg = Config(dict(work_dir=str(tmp_path / 'fresh'),
                      load_from='init.pth',
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))
    merged = _merge(cfg, '--resume')
    assert not merged.resume and merged.load_from == 'init.pth'
