"""Every user-facing option is checked when it is built (the error names
the option, the value and what is allowed), and a config that references
a missing or truncated checkpoint fails before anything is built."""
import os
from importlib.machinery import SourceFileLoader
from unittest.mock import patch

import pytest
import torch
from mmaction.registry import DATASETS, HOOKS, MODELS, TRANSFORMS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from vivit_mm.engine.reliability import (apply_reliability_defaults,
                                         check_checkpoints)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K400_M2 = os.path.join(REPO, 'configs', 'vivit_m2_k400.py')


def _tool(name):
    return SourceFileLoader(f'vivit_{name}_tool', os.path.join(
        REPO, 'tools', f'{name}.py')).load_module()


# (registry, config, exception, the message must contain) -----------------
INVALID = [
    (HOOKS, dict(type='NonFiniteLossHook', action='ignore'), ValueError,
     "action must be one of ('stop', 'skip'), got 'ignore'"),
    (HOOKS, dict(type='NonFiniteLossHook', max_consecutive=0), ValueError,
     'max_consecutive must be an int >= 1, got 0'),
    (HOOKS, dict(type='NonFiniteLossHook', max_consecutive=True), ValueError,
     'max_consecutive must be an int >= 1, got True'),
    (HOOKS, dict(type='ExactResumeHook', reseed_workers='yes'), TypeError,
     "reseed_workers must be True or False, got 'yes'"),
    (HOOKS, dict(type='SkippedVideosHook', max_files=-1), ValueError,
     'max_files must be an int >= 0, got -1'),
    (DATASETS, dict(type='SkipBadVideosDataset', max_bad_ratio=1.5,
                    dataset=[]), ValueError,
     'max_bad_ratio must be a number in [0, 1], got 1.5'),
    (DATASETS, dict(type='SkipBadVideosDataset', max_bad_ratio='10%',
                    dataset=[]), ValueError, "got '10%'"),
    (DATASETS, dict(type='SkipBadVideosDataset', dataset=42), TypeError,
     'dataset must be a data set or its config dict, got int'),
    (TRANSFORMS, dict(type='CheckVideoLength', min_frames=0), ValueError,
     'min_frames must be an int >= 1, got 0'),
    (TRANSFORMS, dict(type='CheckVideoLength', min_frames=2.5), ValueError,
     'got 2.5'),
    (TRANSFORMS, dict(type='ScaleJitter', prob='high'), ValueError,
     "prob must be in [0, 1], got 'high'"),
    (TRANSFORMS, dict(type='ScaleJitter', scale_range=(0.9, 'x')),
     ValueError, "scale_range must be (low, high) with 0 < low <= high"),
    (TRANSFORMS, dict(type='VideoColorJitter', prob=None), ValueError,
     'prob must be in [0, 1], got None'),
    (TRANSFORMS, dict(type='VideoColorJitter', brightness='x'), ValueError,
     "brightness must be in [0, 1], got 'x'"),
    (TRANSFORMS, dict(type='VideoColorJitter', hue=None), ValueError,
     'hue must be in [0, 0.5], got None'),
    (TRANSFORMS, dict(type='VideoColorJitter', saturation=(0.6, 'a')),
     ValueError, "saturation must be (low, high)"),
    (MODELS, dict(type='ViViTHead', num_classes=0, in_channels=32),
     ValueError, 'num_classes must be a positive int, got 0'),
    (MODELS, dict(type='ViViTHead', num_classes=4, in_channels=None),
     ValueError, 'in_channels must be a positive int, got None'),
    # BaseHead itself only complains at the first validation.
    (MODELS, dict(type='ViViTHead', num_classes=4, in_channels=32,
                  average_clips='mean'), ValueError,
     "average_clips must be 'score', 'prob' or None, got 'mean'"),
]


@pytest.mark.parametrize('registry, cfg, exc, message', INVALID,
                         ids=[f"{c['type']}-{i}"
                              for i, (_, c, _, _) in enumerate(INVALID)])
def test_invalid_option_is_rejected_when_built(registry, cfg, exc, message):
    with pytest.raises(exc) as info:
        registry.build(cfg)
    assert message in str(info.value)


def test_invalid_tool_options():
    with pytest.raises(ValueError, match="nonfinite_loss must be None, "
                       "'stop' or 'skip', got 'maybe'"):
        apply_reliability_defaults(Config(dict()), nonfinite_loss='maybe')
    with pytest.raises(SystemExit):
        _tool('train').parse_args(['x.py', '--nonfinite-loss', 'maybe'])


# --------------------------------------------------------------------------
# Missing checkpoints fail first.
class _NotBuilt(Exception):
    """Raised by a patched Runner.from_cfg: the checks passed."""


def _train_main(argv):
    train = _tool('train')
    with patch.object(Runner, 'from_cfg', side_effect=_NotBuilt):
        train.main(argv)


def test_missing_load_from_fails_before_building(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError,
                       match=f"load_from='{missing}': the file does not "
                       'exist.*nothing has been trained'):
        _train_main([K400_M2, '--work-dir', str(tmp_path),
                     '--cfg-options', f'load_from={missing}'])


def test_missing_resume_checkpoint_fails_before_building(tmp_path):
    missing = tmp_path / 'epoch_9.pth'
    with pytest.raises(FileNotFoundError,
                       match=r'does not exist \(resume=True resumes from'):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--resume',
                     str(missing)])


def test_truncated_checkpoint_fails_before_building(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), good)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match='truncated or damaged'):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--resume',
                     str(cut)])
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty \(0 bytes\)'):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--cfg-options',
                     f'load_from={empty}'])
    with pytest.raises(_NotBuilt):  # a complete file passes
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--cfg-options',
                     f'load_from={good}'])


def test_init_hook_checkpoint_needed_only_from_scratch(tmp_path):
    # The K400 configs inflate checkpoints/vit-base-p16_in21k...pth, which
    # is not here: training from scratch must stop at once...
    cfg = Config.fromfile(K400_M2)
    hook_ckpt = cfg.custom_hooks[0].checkpoint
    assert not os.path.exists(os.path.join(REPO, hook_ckpt))
    with pytest.raises(FileNotFoundError, match=r'custom_hooks\[0\]\.'
                       f"checkpoint='{hook_ckpt}'.*ViViTInitHook"):
        _train_main([K400_M2, '--work-dir', str(tmp_path)])
    # ... but not when weights are restored (load_from or resume).
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict={}), good)
    with pytest.raises(_NotBuilt):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--cfg-options',
                     f'load_from={good}'])
    (tmp_path / 'epoch_1.pth').write_bytes(good.read_bytes())
    with pytest.raises(_NotBuilt):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--resume'])


def test_missing_pretrained_init_cfg_fails_before_building(tmp_path):
    cfg = Config.fromfile(K400_M2)
    cfg.custom_hooks = []
    cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                       checkpoint=str(tmp_path / 'vit.pth'))
    cfg.work_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError,
                       match=r'model\.backbone\.init_cfg\.checkpoint='):
        check_checkpoints(cfg)
    cfg.model.backbone.init_cfg.checkpoint = 'https://example.com/vit.pth'
    check_checkpoints(cfg)  # remote paths are left to the loader


def test_test_tool_missing_checkpoint_fails_before_building(tmp_path):
    test = _tool('test')
    with patch.object(Runner, 'from_cfg', side_effect=_NotBuilt):
        with pytest.raises(FileNotFoundError,
                           match="CHECKPOINT='.*nope.pth': the file does "
                           'not exist'):
            test.main([K400_M2, str(tmp_path / 'nope.pth'), '--work-dir',
                       str(tmp_path)])


# Without tools/train.py: the Runner itself fails before the first
# iteration (after building), never after an epoch.
class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x, y, mode='tensor'):
        return dict(loss=nn.functional.cross_entropy(self.fc(x), y))


class _CountIters(Hook):

    def __init__(self):
        self.iters = 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters += 1


@pytest.mark.parametrize('resume', [False, True])
def test_runner_with_missing_load_from_fails_before_any_iteration(
        tmp_path, resume):
    counter = _CountIters()
    data = [dict(x=torch.zeros(2), y=torch.tensor(0))] * 4
    runner = Runner(
        _Toy(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, batch_size=2,
                              sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[counter], load_from=str(tmp_path / 'nope.pth'),
        resume=resume, default_scope='mmaction',
        experiment_name=f'missing_load_from_{os.getpid()}_{resume}')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        runner.train()
    assert counter.iters == 0
