"""The Kinetics-400 / SSv2 configs build, carry the paper's recipe (REFERENCE
section 2) and their clip-level transforms do what the paper describes."""
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope
from mmaction.registry import MODELS, TRANSFORMS

from tests.conftest import REPO
from vivit_mm.datasets.video_errors import iter_transforms

# config -> (backbone type, arch, classes, base lr, epochs, paper params in M
# (Table 2, ViViT-B/16x2 with 400 classes) or None)
CONFIGS = {
    'vivit_m1_k400.py': ('ViViTM1', 'b', 400, 0.1, 30, 88.9),
    'vivit_m2_k400.py': ('ViViTM2', 'b', 400, 0.1, 30, 115.1),
    'vivit_m3_k400.py': ('ViViTM3', 'b', 400, 0.1, 30, 117.3),
    'vivit_m4_k400.py': ('ViViTM4', 'b', 400, 0.1, 30, 88.9),
    'vivit_m2_ssv2.py': ('ViViTM2', 'b', 174, 0.5, 35, 115.1),
    'vivit_l_m1_k400.py': ('ViViTM1', 'l', 400, 0.1, 30, None),
    'vivit_l_m2_k400.py': ('ViViTM2', 'l', 400, 0.1, 30, None),
    'vivit_l_m2_ssv2.py': ('ViViTM2', 'l', 174, 0.5, 35, None),
}
WIDTH = {'b': (768, 12, 12), 'l': (1024, 24, 16)}


def _cfg(name):
    return Config.fromfile(str(REPO / 'configs' / name))


def _find(pipeline, type_):
    return [t for t in iter_transforms(pipeline) if t['type'] == type_]


def _dataset(loader):
    """The data set inside wrappers (ReproducibleDataset)."""
    ds = loader.dataset
    while isinstance(ds.get('dataset'), dict):
        ds = ds.dataset
    return ds


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_builds(name):
    bb_type, arch, classes, _, _, params = CONFIGS[name]
    cfg = _cfg(name)
    assert cfg.custom_imports == dict(imports=['vivit_mm'],
                                      allow_failed_imports=False)
    assert cfg.default_scope == 'mmaction'
    init_default_scope('mmaction')
    model_cfg = cfg.model.copy()
    preprocessor = MODELS.build(model_cfg.pop('data_preprocessor'))
    assert preprocessor.mean.flatten().tolist() == [127.5] * 3  # [-1, 1]
    assert preprocessor.std.flatten().tolist() == [127.5] * 3
    with torch.device('meta'):  # full size, no memory
        model = MODELS.build(model_cfg)
    bb = model.backbone
    assert type(bb).__name__ == bb_type
    assert (bb.embed_dims, bb.num_layers, bb.num_heads) == WIDTH[arch]
    assert bb.grid == (16, 14, 14)  # 32x224x224, tubelets 2x16x16
    assert model.cls_head.num_classes == classes
    if params is not None:
        # Table 2 counts 400 classes; the SSv2 head has 174.
        expected = params - (400 - classes) * 769 / 1e6
        n = sum(p.numel() for p in model.parameters()) / 1e6
        assert n == pytest.approx(expected, abs=0.06)  # paper rounds to 0.1
    for key in ('train_pipeline', 'val_pipeline', 'test_pipeline'):
        for t in cfg[key]:
            TRANSFORMS.build(t)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert [t['type'] for t in _dataset(cfg[key]).pipeline] == [
            t['type'] for t in cfg[key.replace('dataloader', 'pipeline')]
        ]
    hook, = cfg.custom_hooks
    assert hook.type == 'ViViTInitHook'
    assert hook.tubelet_init == 'central_frame'  # Table 1: best init
    assert hook.checkpoint == cfg.pretrained
    assert f'vit-{"base" if arch == "b" else "large"}-p16' in hook.checkpoint


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_paper_recipe(name):
    _, arch, classes, lr, epochs, _ = CONFIGS[name]
    cfg = _cfg(name)
    ssv2 = 'ssv2' in name
    train, test = cfg.train_pipeline, cfg.test_pipeline
    sample, = _find(train, 'SampleFrames')
    assert (sample.clip_len, sample.frame_interval, sample.num_clips) == (
        32, 2, 1)
    assert _find(train, 'ScaleJitter')[0].scale_range == (0.9, 1.33)
    assert _find(train, 'RandomCrop')[0].size == 224
    sample, = _find(test, 'SampleFrames')
    assert (sample.clip_len, sample.frame_interval, sample.num_clips,
            sample.test_mode) == (32, 2, 4, True)
    if ssv2:
        # No flip: SSv2 labels depend on left/right. RandAugment 2/20, the
        # same operations for every frame; 4x1 test views.
        for key in ('train_pipeline', 'val_pipeline', 'test_pipeline'):
            assert not _find(cfg[key], 'Flip')
        assert not _find(train, 'VideoColorJitter')
        ra, = _find(train, 'TorchVisionWrapper')
        assert (ra.op, ra.num_ops, ra.magnitude) == ('RandAugment', 2, 20)
        assert _find(test, 'CenterCrop')[0].crop_size == 224
        views = 4
        assert cfg.model.backbone.drop_path_rate == 0.3
        assert cfg.model.cls_head.label_smooth_eps == 0.3
        blending = cfg.model.data_preprocessor.blending
        assert (blending.type, blending.alpha,
                blending.num_classes) == ('MixupBlending', 0.3, classes)
    else:
        assert _find(train, 'Flip')[0].flip_ratio == 0.5
        assert _find(train, 'VideoColorJitter')[0].prob == 0.8
        assert not _find(train, 'TorchVisionWrapper')
        assert _find(test, 'ThreeCrop')[0].crop_size == 224
        assert _find(test, 'Resize')[0].scale == (-1, 224)
        views = 12
        assert cfg.model.backbone.drop_path_rate == 0.0
        assert cfg.model.cls_head.get('label_smooth_eps', 0) == 0
        assert cfg.model.data_preprocessor.get('blending') is None
    # Multi-view test: scores averaged, views in chunks (needs batch 1).
    assert cfg.model.cls_head.average_clips == 'score'
    assert views % cfg.model.test_cfg.max_testing_views == 0
    assert cfg.test_dataloader.batch_size == 1
    assert cfg.val_dataloader.batch_size == 1
    # Optimiser: SGD momentum 0.9, the paper's lr for a batch of 64.
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum) == ('SGD', lr, 0.9)
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=64)
    assert cfg.train_cfg.max_epochs == epochs
    per_gpu = cfg.train_dataloader.batch_size
    assert per_gpu * (8 if arch == 'b' else 16) == 64


def _lr_curve(cfg, epoch_length):
    """Learning rate of every iteration, built the way the Runner does."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = []
    for s in cfg.param_scheduler:
        s = s.copy()
        assert s.pop('convert_to_iter_based')
        cls = PARAM_SCHEDULERS.get(s.pop('type'))
        schedulers.append(
            cls.build_iter_from_epoch(opt, epoch_length=epoch_length, **s))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in schedulers:
            s.step()
    return np.array(lrs)


@pytest.mark.parametrize('name', ['vivit_m2_k400.py', 'vivit_m2_ssv2.py'])
def test_schedule_is_warmup_then_cosine(name):
    cfg = _cfg(name)
    base, epochs, length = cfg.optim_wrapper.optimizer.lr, \
        cfg.train_cfg.max_epochs, 20
    lrs = _lr_curve(cfg, length)
    warm = int(2.5 * length)  # 2.5 warm-up epochs
    total = epochs * length
    it = np.arange(total)
    expected = np.where(
        it < warm, base * (1e-3 + (1 - 1e-3) * np.minimum(it, warm - 1) /
                           (warm - 1)),
        base * 0.5 * (1 + np.cos(math.pi * (it - warm) / (total - warm))))
    np.testing.assert_allclose(lrs, expected, rtol=1e-6, atol=1e-12)
    assert lrs.max() == pytest.approx(base)
    assert lrs[-1] < 1e-3 * base


@pytest.mark.parametrize('name', sorted(CONFIGS) + [
    'vivit_m2_synthetic.py', 'vivit_m2_finetune.py'])
def test_config_names_everything_its_run_needs(name):
    """The hooks, the guarded video reading and the resumable training
    sampler are in the config itself, not added by a tool or an import."""
    cfg = _cfg(name)
    hooks = {k: h.type for k, h in cfg.default_hooks.items() if h}
    assert hooks['checkpoint'] == 'AtomicCheckpointHook'
    assert {'WeightsOnlyCheckpointHook', 'ExactResumeHook',
            'NonFiniteLossHook', 'VideoVisualizationHook'} <= set(hooks.values())
    assert cfg.train_dataloader.sampler.type == 'ResumableSampler'
    assert cfg.train_dataloader.dataset.type == 'ReproducibleDataset'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = _dataset(cfg[key]).pipeline
        guard = pipeline[0]
        assert guard.type == 'VideoReadGuard'
        assert [t.type for t in guard.transforms] == [
            'DecordInit', 'SampleFrames', 'DecordDecode']
        assert not [t for t in pipeline[1:] if 'Decord' in t['type']]


def test_finetune_recipe():
    """configs/vivit_m2_finetune.py: a 16-frame Model 2 for the user's
    lists, light regularisers, a short AdamW schedule with warm-up and
    layer-wise lr decay rising from the tokeniser to the head."""
    from mmengine.optim import build_optim_wrapper
    cfg = _cfg('vivit_m2_finetune.py')
    assert cfg.custom_imports == dict(imports=['vivit_mm'],
                                      allow_failed_imports=False)
    for key in ('train_pipeline', 'val_pipeline', 'test_pipeline'):
        sample, = _find(cfg[key], 'SampleFrames')
        assert (sample.clip_len, sample.frame_interval) == (16, 4)
    for key, ann in (('train', 'train'), ('val', 'val'), ('test', 'val')):
        ds = _dataset(cfg[f'{key}_dataloader'])
        assert (ds.ann_file, ds.data_prefix.video) == (
            f'data/my_videos/{ann}.txt', 'data/my_videos')
        assert ds.pipeline == cfg[f'{key}_pipeline']
    assert cfg.load_from == 'checkpoints/vivit_m2_k400.pth'
    assert 'custom_hooks' not in cfg  # no ViViTInitHook next to load_from
    # regularisers: stochastic depth and label smoothing on, the rest off
    assert cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.model.cls_head.label_smooth_eps == 0.1
    assert cfg.model.data_preprocessor.blending is None
    assert not _find(cfg.train_pipeline, 'TorchVisionWrapper')
    init_default_scope('mmaction')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    bb = model.backbone
    assert (type(bb).__name__, bb.num_frames, bb.grid, bb.frozen_stages) == (
        'ViViTM2', 16, (8, 14, 14), 0)
    assert model.cls_head.num_classes == cfg.num_classes
    # optimizer: decayed lrs from the tokeniser (0.8 ** 17) to the head
    opt = cfg.optim_wrapper
    assert opt.constructor == 'ViViTLayerDecayOptimWrapperConstructor'
    assert opt.optimizer.type == 'AdamW'
    groups = build_optim_wrapper(model, opt).optimizer.param_groups
    lr = {g['param_name']: g['lr'] for g in groups}
    base = opt.optimizer.lr
    assert lr['cls_head.fc_cls.weight'] == base
    assert lr['backbone.patch_embed.projection.weight'] == pytest.approx(
        base * 0.8**17)
    assert lr['backbone.layers.11.attn.qkv.weight'] < \
        lr['backbone.temporal_layers.0.attn.qkv.weight']
    # warm-up then cosine to 0 over the short schedule
    lrs = _lr_curve(cfg, 10)
    assert cfg.train_cfg.max_epochs == 20
    assert lrs[0] == pytest.approx(0.01 * base)
    assert (np.diff(lrs[:20]) > 0).all() and (np.diff(lrs[20:]) < 0).all()
    assert lrs.max() == pytest.approx(base) == lrs[20]
    assert lrs[-1] < 0.01 * base
    # with frozen_stages, the frozen parameters are not optimised
    cfg.model.backbone.frozen_stages = 12
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    names = {g['param_name'] for g in build_optim_wrapper(
        model, opt).optimizer.param_groups}
    assert min(n for n in names if n.startswith('backbone')) == \
        'backbone.temporal_cls_token'
    assert not [n for n in names if n.startswith('backbone.layers.')]


@pytest.mark.parametrize('name', ['vivit_m1_k400.py', 'vivit_m2_k400.py',
                                  'vivit_m3_k400.py', 'vivit_m4_k400.py'])
def test_k400_configs_are_short_children_of_shared_bases(name):
    lines = [line for line in (REPO / 'configs' / name).read_text()
             .splitlines() if line.strip() and not line.startswith('#')]
    assert lines == [f"_base_ = ['_base_/models/{name[6:8]}.py', "
                     "'_base_/vivit_k400.py']".replace(
                         "models/m", 'models/vivit_m')]


def test_memory_and_speed_configs():
    from mmengine import Config
    amp = Config.fromfile(REPO / 'configs/vivit_m2_k400_amp.py')
    assert amp.optim_wrapper.type == 'AmpOptimWrapper'
    assert amp.optim_wrapper.dtype == 'bfloat16'
    assert amp.optim_wrapper.optimizer.type == 'SGD'  # inherited
    cp = Config.fromfile(REPO / 'configs/vivit_m1_k400_cp.py')
    assert cp.model.backbone.type == 'ViViTM1' and cp.model.backbone.with_cp
    compiled = Config.fromfile(REPO / 'configs/vivit_m2_k400_compile.py')
    assert compiled.compile is True
    assert compiled.model.backbone.type == 'ViViTM2'
    # the hook that lets compile trace paramwise_cfg param groups: added
    # once with compile, never without
    from vivit_cli.run_config import add_plain_param_groups_hook
    before = [h['type'] for h in compiled.custom_hooks]
    for _ in range(2):
        add_plain_param_groups_hook(compiled)
    assert [h['type'] for h in compiled.custom_hooks] == \
        before + ['PlainParamGroupsHook']
    add_plain_param_groups_hook(cp)
    assert 'PlainParamGroupsHook' not in [h['type'] for h in
                                          cp.get('custom_hooks', [])]
