"""``ViViTLayerDecayOptimWrapperConstructor``: mmpretrain's layer-decay
constructor for a whole recognizer. Its groups equal mmpretrain's own
constructor given the backbone's depths; lr = base_lr * rate ** (max - 1 -
depth) rises from the tokeniser to the head; frozen parameters are left
out; the decay-free keys; schedulers keep the ratios; a Runner saves
weights-only checkpoints with these groups and resumes from them; and
``import vivit_mm`` does not import mmpretrain's engine."""
import os
import subprocess
import sys

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from tests.conftest import REPO, TINY_ARCH
from tests.engine.conftest import experiment_name
from vivit_mm.convert.io import safe_load
from vivit_mm.engine import ViViTLayerDecayOptimWrapperConstructor

CFG = dict(arch=dict(TINY_ARCH), img_size=16, num_frames=4, patch_size=8,
           tubelet_size=2)
NO_DECAY = dict(norm_decay_mult=0.0, flat_decay_mult=0.0,
                custom_keys={'cls_token': dict(decay_mult=0.0),
                             'pos_embed': dict(decay_mult=0.0)})


def recognizer(backbone_type='ViViTM2', **kw):
    backbone = dict(type=backbone_type, **CFG, **kw)
    with DefaultScope.overwrite_default_scope('mmaction'):
        return MODELS.build(dict(
            type='Recognizer3D', backbone=backbone,
            cls_head=dict(type='ViViTHead', num_classes=3, in_channels=32),
            data_preprocessor=dict(type='ActionDataPreprocessor',
                                   format_shape='NCTHW')))


def optim_cfg(rate=0.5, wd=0.05, **paramwise):
    return dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=wd),
                constructor='ViViTLayerDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay_rate=rate, **paramwise))


def groups(model, cfg):
    with DefaultScope.overwrite_default_scope('mmaction'):
        return build_optim_wrapper(model, cfg).optimizer.param_groups


@pytest.mark.parametrize('backbone, kw', [
    ('ViViTM1', {}), ('ViViTM2', dict(num_temporal_layers=2)),
    ('ViViTM3', {}), ('ViViTM4', {})])
def test_decayed_lrs_rise_from_tokeniser_to_head(backbone, kw):
    model = recognizer(backbone, **kw)
    rate = 0.5
    got = groups(model, optim_cfg(rate, **NO_DECAY))
    names = [g['param_name'] for g in got]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    num_layers = model.backbone.num_blocks + 2
    by_name = {}
    for g in got:
        depth, n = model.backbone.get_layer_depth(g['param_name'],
                                                  'backbone.')
        assert n == num_layers and g['layer_id'] == depth
        assert g['lr'] == pytest.approx(1e-3 * rate**(num_layers - 1 -
                                                      depth))
        by_name[g['param_name']] = g
    lr = {n: g['lr'] for n, g in by_name.items()}
    assert lr['backbone.patch_embed.projection.weight'] == min(lr.values())
    assert lr['cls_head.fc_cls.weight'] == max(lr.values()) == 1e-3
    assert lr['backbone.layers.0.attn.qkv.weight'] < \
        lr['backbone.layers.1.attn.qkv.weight']
    if backbone == 'ViViTM2':
        assert lr['backbone.layers.1.mlp.fc1.weight'] < \
            lr['backbone.temporal_layers.0.mlp.fc1.weight'] < \
            lr['backbone.temporal_layers.1.mlp.fc1.weight'] < \
            lr['cls_head.fc_cls.weight']
    # weight decay: none for tables, norms and biases; full for kernels
    for name, g in by_name.items():
        no_decay = 'pos_embed' in name or 'cls_token' in name or \
            'norm' in name or name.endswith('bias')
        assert g['weight_decay'] == (0.0 if no_decay else 0.05), name


def test_same_groups_as_mmpretrains_constructor():
    """Parity: mmpretrain's constructor, given a model whose
    get_layer_depth is the backbone's under 'backbone.', makes the same
    groups (ours adds nothing else when there is no lr_mult)."""
    from mmpretrain.engine.optimizers import \
        LearningRateDecayOptimWrapperConstructor
    model = recognizer('ViViTM2', num_temporal_layers=1, frozen_stages=1)

    class WithDepth(nn.Module):

        def __init__(self, inner):
            super().__init__()
            self.backbone, self.cls_head = inner.backbone, inner.cls_head

        def get_layer_depth(self, name):
            return self.backbone.get_layer_depth(name, 'backbone.')

    cfg = optim_cfg(0.7, **NO_DECAY)
    ours = groups(model, cfg)
    cfg.pop('constructor')
    paramwise = cfg.pop('paramwise_cfg')
    theirs = LearningRateDecayOptimWrapperConstructor(cfg, paramwise)(
        WithDepth(model)).optimizer.param_groups
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a['params'][0] is b['params'][0]
        for key in ('param_name', 'lr', 'weight_decay', 'layer_id',
                    'lr_scale'):
            assert a[key] == b[key], (a['param_name'], key)


def test_frozen_parameters_are_left_out():
    model = recognizer('ViViTM2', num_temporal_layers=2, frozen_stages=3)
    names = {g['param_name'] for g in groups(model, optim_cfg())}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == trainable
    assert 'backbone.temporal_layers.1.attn.qkv.weight' in names
    assert not any(n.startswith(('backbone.layers.', 'backbone.patch_embed',
                                 'backbone.temporal_layers.0.'))
                   for n in names)


def test_rate_one_is_off_and_lr_mult_multiplies():
    model = recognizer('ViViTM1')
    assert {g['lr'] for g in groups(model, optim_cfg(1.0))} == {1e-3}
    got = groups(model, optim_cfg(
        1.0, custom_keys={'pos_embed': dict(lr_mult=10.0)}))
    for g in got:
        assert 'lr_mult' not in g
        assert g['lr'] == pytest.approx(
            1e-2 if g['param_name'] == 'backbone.pos_embed' else 1e-3)


@pytest.mark.parametrize('cfg, match', [
    (optim_cfg(0.0), 'layer_decay_rate must be > 0'),
    (optim_cfg(1.5), r'layer_decay_rate must be a number in \[0, 1\]'),
    (optim_cfg(0.5, wd=None), 'set optim_wrapper.optimizer.weight_decay'),
])
def test_bad_settings_say_what_to_fix(cfg, match):
    if cfg['optimizer']['weight_decay'] is None:
        cfg['optimizer'].pop('weight_decay')
    with pytest.raises(ValueError, match=match):
        groups(recognizer('ViViTM1'), cfg)


def test_model_without_layer_depths_is_refused():
    with pytest.raises(ValueError, match='needs a model with get_layer_depth'):
        groups(nn.Sequential(nn.Linear(2, 2)), optim_cfg())


def test_import_vivit_mm_does_not_import_mmpretrain_engine(tmp_path):
    code = ('import sys, vivit_mm; from mmaction.registry import '
            'OPTIM_WRAPPER_CONSTRUCTORS as R; '
            "assert R.get('ViViTLayerDecayOptimWrapperConstructor') is not "
            "None; print('mmpretrain.engine' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == 'False'
    from mmpretrain.engine.optimizers import \
        LearningRateDecayOptimWrapperConstructor
    built = ViViTLayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=0.0)))
    assert isinstance(built, ViViTLayerDecayOptimWrapperConstructor)
    assert isinstance(built, LearningRateDecayOptimWrapperConstructor)


# ----------------------------------------------------------------- Runner
class VideoToy(BaseModel):
    """A tiny ViViT Model 2 backbone and a linear head."""

    def __init__(self):
        super().__init__()
        self.backbone = MODELS.build(dict(type='ViViTM2', **CFG,
                                          num_temporal_layers=1,
                                          frozen_stages=1))
        self.head = nn.Linear(32, 3)

    def forward(self, x, y, mode='tensor'):
        out = self.head(self.backbone(x))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, y))
        return out


class Clips(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(3, 4, 16, 16, generator=g),
                    y=torch.tensor(i % 3))


def runner(work_dir, epochs, resume=False):
    torch.manual_seed(0)
    return Runner(
        VideoToy(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Clips(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optim_cfg(0.5, **NO_DECAY),
                           optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                                          weight_decay=1e-4)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, end=3,
                              by_epoch=False),
                         dict(type='CosineAnnealingLR', begin=3, end=6,
                              by_epoch=False)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=[dict(type='WeightsOnlyCheckpointHook'),
                      dict(type='PlainParamGroupsHook')],
        resume=resume, randomness=dict(seed=0), default_scope='mmaction',
        log_level='WARNING', experiment_name=experiment_name('decay'))


def test_runner_schedules_saves_and_resumes_decayed_groups(tmp_path):
    first = runner(tmp_path, 2)
    first.train()
    head = first.model.head.weight
    opt = first.optim_wrapper.optimizer
    head_lr = next(g['lr'] for g in opt.param_groups
                   if g['params'][0] is head)
    assert 0 < head_lr < 0.1  # the scheduler has acted
    for g in opt.param_groups:  # ... on every group alike
        assert g['lr'] == pytest.approx(head_lr * g['lr_scale'])
        assert type(g) is dict
    ckpt = safe_load(tmp_path / 'epoch_2.pth')  # weights_only=True
    saved = ckpt['optimizer']['param_groups']
    assert [g['param_name'] for g in saved] == \
        [g['param_name'] for g in opt.param_groups]
    frozen = [n for n, p in first.model.named_parameters()
              if not p.requires_grad]
    assert frozen and not set(frozen) & {g['param_name'] for g in saved}
    resumed = runner(tmp_path, 3, resume=True)
    resumed.train()
    assert resumed.epoch == 3
    lrs = [g['lr'] for g in resumed.optim_wrapper.optimizer.param_groups]
    assert len(set(lrs)) > 1
    for g in resumed.optim_wrapper.optimizer.param_groups:
        assert g['lr'] == pytest.approx(lrs[-1] * g['lr_scale'])
    torch.testing.assert_close(
        resumed.model.backbone.patch_embed.projection.weight,
        ckpt['state_dict']['backbone.patch_embed.projection.weight'])
