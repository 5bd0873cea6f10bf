"""The Kinetics-400 / SSv2 configs build, carry the paper's recipe (REFERENCE
section 2) and their clip-level transforms do what the paper describes."""
import math
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope
from mmaction.registry import MODELS, TRANSFORMS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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
    return Config.fromfile(os.path.join(REPO, 'configs', name))


def _find(pipeline, type_):
    return [t for t in pipeline if t['type'] == type_]


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
        assert [t['type'] for t in cfg[key].dataset.pipeline] == [
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


# --------------------------------------------------------------------------
# Clip-level transforms.
def _clip(t=4, h=20, w=30, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for _ in range(t)]


def test_scale_jitter_draws_independent_factors_per_clip():
    jitter = TRANSFORMS.build(dict(type='ScaleJitter',
                                   scale_range=(0.9, 1.33)))
    np.random.seed(0)
    shapes = []
    for _ in range(200):
        out = jitter(dict(imgs=_clip(h=100, w=200), img_shape=(100, 200)))
        sizes = {img.shape[:2] for img in out['imgs']}
        assert len(sizes) == 1 and out['img_shape'] in sizes  # whole clip
        shapes.append(out['img_shape'])
    h = np.array([s[0] for s in shapes]) / 100
    w = np.array([s[1] for s in shapes]) / 200
    assert h.min() >= 0.89 and w.min() >= 0.89
    assert h.max() <= 1.33 and w.max() <= 1.33
    assert h.max() - h.min() > 0.35 and w.max() - w.min() > 0.35
    assert abs(np.corrcoef(h, w)[0, 1]) < 0.3  # aspect ratio varies too


@pytest.mark.parametrize('kwargs, match', [
    (dict(scale_range=(1.2, 0.9)), 'scale_range'),
    (dict(scale_range=(0, 1)), 'scale_range'),
    (dict(prob=1.5), 'prob'),
    (dict(interpolation='cubic'), 'interpolation'),
])
def test_scale_jitter_rejects_bad_options(kwargs, match):
    from vivit_mm.datasets.transforms import ScaleJitter
    with pytest.raises(ValueError, match=match):
        ScaleJitter(**kwargs)


def _color(seed, imgs, **kwargs):
    np.random.seed(seed)
    out = TRANSFORMS.build(dict(type='VideoColorJitter', **kwargs))(
        dict(imgs=[i.copy() for i in imgs]))
    return out['imgs']


def test_color_jitter_brightness_matches_reference():
    imgs = _clip()
    out = _color(3, imgs, prob=1.0, saturation=(1, 1), contrast=(1, 1),
                 hue=0.0)
    np.random.seed(3)
    np.random.rand()  # the coin toss
    delta = np.random.uniform(-32 / 255, 32 / 255)
    for img, o in zip(imgs, out):  # the same delta on every frame
        ref = np.clip(img / 255. + delta, 0, 1) * 255
        assert np.abs(o.astype(float) - ref).max() <= 1.0


def test_color_jitter_contrast_matches_reference():
    imgs = _clip()
    out = _color(5, imgs, prob=1.0, brightness=0.0, saturation=(1, 1),
                 hue=0.0)
    np.random.seed(5)
    np.random.rand(), np.random.uniform(0, 0), np.random.uniform(1, 1)
    factor = np.random.uniform(0.6, 1.4)
    for img, o in zip(imgs, out):
        x = img / 255.
        mean = x.mean(axis=(0, 1), keepdims=True)
        ref = np.clip((x - mean) * factor + mean, 0, 1) * 255
        assert np.abs(o.astype(float) - ref).max() <= 1.0


def test_color_jitter_is_clip_consistent_and_probabilistic():
    frame = _clip(t=1)[0]
    imgs = [frame] * 5
    changed = 0
    for seed in range(20):
        out = _color(seed, imgs)
        assert all(np.array_equal(o, out[0]) for o in out)
        changed += not np.array_equal(out[0], frame)
    assert 10 <= changed < 20  # prob 0.8: mostly, not always
    assert all(np.array_equal(o, frame) for o in _color(0, imgs, prob=0.0))
    gray = _color(0, imgs, prob=0.0, gray_prob=1.0)[0]
    assert np.array_equal(gray[..., 0], gray[..., 1])
    assert np.array_equal(gray[..., 1], gray[..., 2])


@pytest.mark.parametrize('kwargs', [
    dict(prob=-0.1), dict(gray_prob=2), dict(brightness=1.5),
    dict(saturation=(1.4, 0.6)), dict(contrast=0.5), dict(hue=0.7)
])
def test_color_jitter_rejects_bad_options(kwargs):
    from vivit_mm.datasets.transforms import VideoColorJitter
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        VideoColorJitter(**kwargs)


def test_ssv2_randaugment_applies_the_same_ops_to_every_frame():
    ra = _find(_cfg('vivit_m2_ssv2.py').train_pipeline,
               'TorchVisionWrapper')[0]
    transform = TRANSFORMS.build(ra)
    frame = _clip(t=1, h=32, w=32)[0]
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(dict(imgs=[frame.copy() for _ in range(6)]))['imgs']
        assert all(np.array_equal(o, out[0]) for o in out)
        changed += not np.array_equal(out[0], frame)
    assert changed >= 8
