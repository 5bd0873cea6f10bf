"""The clip-level transforms of the paper's recipe: ``ScaleJitter``,
``VideoColorJitter`` (DMVR/scenic colour augmentation) and the SSv2
config's RandAugment through MMAction2's ``TorchVisionWrapper``."""
import numpy as np
import pytest
import torch
from mmaction.registry import TRANSFORMS
from mmengine.config import Config

from tests.conftest import REPO


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
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m2_ssv2.py'))
    ra = next(t for t in cfg.train_pipeline
              if t['type'] == 'TorchVisionWrapper')
    transform = TRANSFORMS.build(ra)
    frame = _clip(t=1, h=32, w=32)[0]
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(dict(imgs=[frame.copy() for _ in range(6)]))['imgs']
        assert all(np.array_equal(o, out[0]) for o in out)
        changed += not np.array_equal(out[0], frame)
    assert changed >= 8
