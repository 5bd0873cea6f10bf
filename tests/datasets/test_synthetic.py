"""The embedded synthetic motion data set and the demo config.

Budget: about 30 s on a 2-core CPU (one short Runner training + test).
"""
import importlib.util
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

import vivit_mm  # noqa: F401  (registers models and the dataset)
from tests.conftest import REPO
from tests.tools.helpers import inner_dataset
from vivit_mm.compat import gt_label_of, pred_score_of
from vivit_mm.datasets.synthetic import (CLASSES, ensure_dataset,
                                         generate_dataset, make_video,
                                         read_meta, visit_order)

CONFIG = str(REPO / 'configs' / 'vivit_m2_synthetic.py')
TINY = dict(num_train=2, num_val=1, num_test=1, num_frames=16, width=64,
            height=48)


def _read_video(path):
    import decord
    vr = decord.VideoReader(path)
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def _multiset(frames):
    """The frames of a video as a sorted multiset of byte strings."""
    return sorted(f.tobytes() for f in frames)


# ------------------------------------------------------------ class design
def test_visit_order_permutations_and_pairs():
    T = 16
    orders = [visit_order(c, T) for c in range(len(CLASSES))]
    for o in orders:
        assert sorted(o.tolist()) == list(range(T))
    np.testing.assert_array_equal(orders[0], np.arange(T))
    np.testing.assert_array_equal(orders[1], orders[0][::-1])  # reversal
    np.testing.assert_array_equal(orders[3], T - 1 - orders[2])  # mirror
    # grow_then_shrink peaks in the middle, shrink_then_grow dips there.
    assert orders[2].argmax() == T // 2 and orders[3].argmin() == T // 2
    assert len({tuple(o) for o in orders}) == len(CLASSES)


@pytest.mark.parametrize('label,frames,match', [
    (4, 16, 'label'), (-1, 16, 'label'), (True, 16, 'label'),
    (0, 15, 'even'), (0, 2, 'num_frames'), (0, 8.0, 'num_frames')])
def test_visit_order_rejects_bad_input(label, frames, match):
    with pytest.raises(ValueError, match=match):
        visit_order(label, frames)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_every_class_shows_the_same_frames(seed):
    """Single-frame ambiguity, exactly: for one scene the four classes show
    the same multiset of frames, so neither a frame nor the bag of frames
    (nor its mean) says anything about the class; only the order does."""
    videos = [make_video(c, (seed, 0, 7)) for c in range(len(CLASSES))]
    ref = _multiset(videos[0])
    for v in videos[1:]:
        assert v.shape == (16, 48, 64, 3) and v.dtype == np.uint8
        assert _multiset(v) == ref
        np.testing.assert_array_equal(v.mean(0), videos[0].mean(0))
    np.testing.assert_array_equal(videos[1], videos[0][::-1])
    # ...while the videos themselves differ frame by frame (the motion).
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(videos[a].astype(int) - videos[b]).mean() > 0.5


def test_size_is_what_changes():
    """The object's area (pixels far from the frame that shows the smallest
    object) rises over a 'grow' video and falls over a 'shrink' one."""
    def area(v, smallest):
        diff = np.abs(v.astype(int) - smallest).max(-1)
        return (diff > 40).sum((1, 2))
    for i in range(3):
        grow, shrink = make_video(0, (5, 0, i)), make_video(1, (5, 0, i))
        a_grow, a_shrink = area(grow, grow[0]), area(shrink, grow[0])
        assert a_grow[0] == 0 and a_grow[-1] > 50
        assert (np.diff(a_grow) >= 0).mean() > 0.8  # mostly rising
        np.testing.assert_array_equal(a_shrink, a_grow[::-1])


def test_per_frame_statistics_same_distribution_across_classes():
    """Over many scenes, per-frame statistics (mean colour, contrast) of
    frame 0 differ by class (the class is in the order), but those of a
    frame drawn from the bag do not: each class gets the same values."""
    stats = {c: [] for c in range(len(CLASSES))}
    for i in range(24):
        for c in range(len(CLASSES)):
            v = make_video(c, (9, 0, i), num_frames=8).astype(np.float64)
            stats[c].append(np.sort(v.std(axis=(1, 2, 3))))
    for c in range(1, len(CLASSES)):
        np.testing.assert_allclose(stats[c], stats[0])


# ---------------------------------------------------- files and determinism
def test_generate_writes_real_mp4_deterministically(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    anns = generate_dataset(a, seed=3, **TINY)
    generate_dataset(b, seed=3, **TINY)
    generate_dataset(c, seed=4, **TINY)
    with open(anns['train']) as f:
        lines = [line.split() for line in f]
    assert len(lines) == TINY['num_train'] * len(CLASSES)
    assert [int(l) for _, l in lines] == [0, 1, 2, 3, 0, 1, 2, 3]
    with open(osp.join(a, 'classes.txt')) as f:
        assert f.read().split() == list(CLASSES)
    for split in ('train', 'val', 'test'):
        assert open(osp.join(a, f'{split}.txt')).read() == open(
            osp.join(b, f'{split}.txt')).read()
    rel, label = lines[2]
    with open(osp.join(a, rel), 'rb') as f:
        assert f.read(12)[4:8] == b'ftyp'  # an ISO/mp4 container
    fa, fb, fc = (_read_video(osp.join(d, rel)) for d in (a, b, c))
    assert fa.shape == (16, 48, 64, 3)
    np.testing.assert_array_equal(fa, fb)
    assert np.abs(fa.astype(int) - fc).mean() > 5
    # Every decoded video is its rendering, up to codec loss (mp4v smooths
    # the noise), in its class's frame order: of the four orders of the same
    # frames, its own is the closest.
    size = {k: TINY[k] for k in ('num_frames', 'width', 'height')}
    for i, (rel, label) in enumerate(lines):
        decoded = _read_video(osp.join(a, rel)).astype(int)
        errors = [np.abs(decoded - make_video(c, (3, 0, i), **size)).mean()
                  for c in range(len(CLASSES))]
        assert errors[int(label)] < 8 and np.argmin(errors) == int(label)


def test_ensure_dataset_reuses_and_never_overwrites(tmp_path):
    out = str(tmp_path / 'd')
    ensure_dataset(out, seed=1, **TINY)
    video = osp.join(out, 'train', '00000.mp4')
    stamp = os.stat(video).st_mtime_ns
    ensure_dataset(out, seed=1, **TINY)  # present: nothing rewritten
    assert os.stat(video).st_mtime_ns == stamp
    assert read_meta(out)['seed'] == 1
    with pytest.raises(ValueError, match="'seed': \\(1, 2\\)"):
        ensure_dataset(out, seed=2, **TINY)
    with pytest.raises(TypeError, match='unknown'):
        ensure_dataset(out, frames=3)


# ------------------------------------------------- MMAction2's own pipeline
def _tiny_cfg(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    data_root = str(tmp_path / 'data')
    for split in ('train', 'val', 'test'):
        ds = inner_dataset(cfg[f'{split}_dataloader'])
        ds.data_root = data_root
        ds.generate = dict(TINY, seed=0)
        cfg[f'{split}_dataloader'].num_workers = 0
        cfg[f'{split}_dataloader'].persistent_workers = False
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


def test_pipelines_read_videos_through_decord(tmp_path):
    from mmaction.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    cfg = _tiny_cfg(tmp_path)
    assert cfg.train_dataloader.dataset.type == 'ReproducibleDataset'
    train = DATASETS.build(inner_dataset(cfg.train_dataloader))
    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(train) == 8 and len(test) == 4
    item = train[1]
    assert item['inputs'].shape == (1, 3, 8, 32, 32)  # 1 view, NCTHW
    assert item['inputs'].dtype == torch.uint8
    assert int(gt_label_of(item['data_samples'])) == 1
    item = test[2]
    assert item['inputs'].shape == (6, 3, 8, 32, 32)  # 2 clips x 3 crops
    # Clips are frames 0,2,..,14 and 1,3,..,15 of the 16-frame video.
    np.testing.assert_array_equal(
        test.pipeline.transforms[0].transforms[1](
            {'total_frames': 16, 'start_index': 0,
             'filename': 'x'})['frame_inds'],
        np.r_[0:16:2, 1:16:2])


def _load_demo_module():
    spec = importlib.util.spec_from_file_location(
        'run_demo', str(REPO / 'tools' / 'run_demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runner_trains_and_tests_multiview(tmp_path):
    """A few Runner iterations on a tiny overfit set (loss finite and
    falling), then Runner.test with 2x3 views: one prediction per video,
    equal to the mean of the per-view class probabilities."""
    from mmengine.runner import Runner
    cfg = _tiny_cfg(tmp_path)
    cfg.model.backbone.arch = dict(embed_dims=32, num_layers=1, num_heads=2,
                                   feedforward_channels=64)
    cfg.model.backbone.num_temporal_layers = 1
    cfg.model.cls_head.in_channels = 32
    cfg.train_dataloader.batch_size = 8
    # no jitter
    inner_dataset(cfg.train_dataloader).pipeline = cfg.val_pipeline
    cfg.train_cfg.max_epochs = 10
    cfg.train_cfg.val_interval = 10
    cfg.optim_wrapper.optimizer.lr = 3e-3
    cfg.param_scheduler = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    dump = str(tmp_path / 'preds.pkl')
    cfg.test_evaluator = [dict(type='AccMetric'),
                          dict(type='DumpResults', out_file_path=dump)]
    runner = Runner.from_cfg(cfg)
    runner.train()

    demo = _load_demo_module()
    curves = demo.read_scalars(cfg.work_dir)
    assert curves['epoch'] == list(range(1, 11))
    losses = curves['loss']
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.1, losses
    assert curves['val_epoch'] == [10]
    png = str(tmp_path / 'curves.png')
    demo.plot_curves(curves, png, 'test', chance=0.25)
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'

    metrics = runner.test()
    assert set(metrics) >= {'acc/top1', 'acc/top5', 'acc/mean1'}
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4  # one per test video, not one per view
    model = runner.model.eval()
    dataset = runner.test_dataloader.dataset
    for i, pred in enumerate(preds):
        assert int(gt_label_of(pred)) == i % 4
        batch = model.data_preprocessor(
            dict(inputs=[dataset[i]['inputs']],
                 data_samples=[dataset[i]['data_samples']]))
        views = batch['inputs'][0]  # [6, 3, 8, 32, 32], normalised
        assert views.shape == (6, 3, 8, 32, 32)
        with torch.no_grad():
            probs = model.cls_head(model.backbone(views)).softmax(-1)
        torch.testing.assert_close(pred_score_of(pred).float(),
                                   probs.mean(0), atol=1e-5, rtol=1e-5)
        # The views disagree, so the average is not just one of them.
        assert (probs - probs.mean(0)).abs().max() > 0
    json.dumps(metrics)  # plain floats, as the demo prints them
