"""Unreadable videos (missing, empty, truncated, undecodable, no frames)
stop a run with an error that names the file and the reason, or are
skipped with a warning per file and a count per epoch; short videos loop."""
import os
import re
import struct

import cv2
import numpy as np
import pytest
import torch
from mmaction.registry import DATASETS, TRANSFORMS
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from vivit_mm.datasets.robust import (SkipBadVideosDataset, VideoReadError,
                                      install_video_guards)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
init_default_scope('mmaction')
READ = [dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1),
        dict(type='DecordDecode')]


def write_video(path, frames, width=40, height=32, seed=0):
    """A bright bar moving over noise (mp4v, as OpenCV writes it)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (width, height))
    for t in range(frames):
        img = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        img[:, (3 * t) % width:(3 * t) % width + 4] = 255
        writer.write(img)
    writer.release()


def faststart(data: bytes) -> bytes:
    """Move the ``moov`` index in front of ``mdat`` (fixing the chunk
    offsets), as web-optimised mp4 files are laid out."""
    atoms, order, pos = {}, [], 0
    while pos < len(data):
        size = struct.unpack('>I', data[pos:pos + 4])[0]
        name = data[pos + 4:pos + 8].decode()
        atoms[name] = data[pos:pos + size]
        order.append(name)
        pos += size
    moov = bytearray(atoms['moov'])
    at = moov.find(b'stco')
    while at != -1:
        for k in range(struct.unpack('>I', moov[at + 8:at + 12])[0]):
            o = at + 12 + 4 * k
            off = struct.unpack('>I', moov[o:o + 4])[0] + len(moov)
            moov[o:o + 4] = struct.pack('>I', off)
        at = moov.find(b'stco', at + 4)
    rest = [atoms[n] for n in order if n not in ('ftyp', 'moov')]
    return b''.join([atoms['ftyp'], bytes(moov)] + rest)


def _zero_mdat(data: bytes) -> bytes:
    start = data.find(b'mdat') + 4
    size = struct.unpack('>I', data[start - 8:start - 4])[0]
    return data[:start] + bytes(size - 8) + data[start + size - 8:]


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """Good, short and broken files: name -> path."""
    d = tmp_path_factory.mktemp('videos')
    out = {}
    for i in range(6):
        write_video(d / f'good{i}.mp4', 12, seed=i)
        out[f'good{i}'] = d / f'good{i}.mp4'
    write_video(d / 'short.mp4', 3, seed=9)
    good = (d / 'good0.mp4').read_bytes()
    fast = faststart(good)
    files = {
        'short': None,
        'empty': b'',
        # OpenCV writes the index (moov) last: a cut file has none.
        'truncated': good[:len(good) // 2],
        # Index first: opens, but the frames are gone.
        'truncated_faststart': fast[:len(fast) // 2],
        'garbage': np.random.default_rng(1).integers(
            0, 256, 5000, dtype=np.uint8).tobytes(),
        # Index intact, every frame's bytes zeroed.
        'damaged': _zero_mdat(good),
    }
    for name, data in files.items():
        if data is not None:
            (d / f'{name}.mp4').write_bytes(data)
        out[name] = d / f'{name}.mp4'
    out['missing'] = d / 'missing.mp4'
    zero = cv2.VideoWriter(str(d / 'no_frames.mp4'),
                           cv2.VideoWriter_fourcc(*'mp4v'), 8, (40, 32))
    zero.release()  # a container without a video stream
    out['no_frames'] = d / 'no_frames.mp4'
    return out


BAD = {
    'missing': 'does not exist',
    'empty': r'empty \(0 bytes\)',
    'truncated': 'could not be decoded',
    'truncated_faststart': 'could not be decoded',
    'garbage': 'could not be decoded',
    'damaged': 'could not be decoded',
    'no_frames': 'could not be decoded',
}


def _read(path, pipeline=READ):
    return Compose(pipeline)(dict(filename=str(path), label=0,
                                  start_index=0, modality='RGB'))


@pytest.mark.parametrize('kind', sorted(BAD))
def test_unreadable_video_error_names_file_and_reason(videos, kind):
    with pytest.raises(VideoReadError) as info:
        _read(videos[kind])
    err = info.value
    assert err.filename == str(videos[kind])
    assert re.search(BAD[kind], err.reason)
    assert str(videos[kind]) in str(err) and 'SkipBadVideosDataset' in str(
        err)
    assert err.stage in ('DecordInit', 'DecordDecode')


def test_decoder_failure_after_opening_is_named_too(tmp_path):
    # The second half of the frames is zeroed: the file opens, decoding
    # those frames fails (DecordDecode).
    write_video(tmp_path / 'long.mp4', 24, 64, 48)
    data = (tmp_path / 'long.mp4').read_bytes()
    start = data.find(b'mdat') + 4
    size = struct.unpack('>I', data[start - 8:start - 4])[0]
    cut = start + size // 2
    path = tmp_path / 'half_damaged.mp4'
    path.write_bytes(data[:cut] + bytes(start + size - 8 - cut) +
                     data[start + size - 8:])
    results = _read(path, READ[:1])
    assert results['total_frames'] == 24
    results['frame_inds'] = np.arange(18, 24)
    with pytest.raises(VideoReadError) as info:
        Compose(READ[2:])(results)
    assert info.value.stage == 'DecordDecode'
    assert info.value.filename == str(path)
    assert 'could not be decoded' in info.value.reason


def test_opencv_reader_is_guarded(videos):
    pipeline = [dict(type='OpenCVInit'), READ[1], dict(type='OpenCVDecode')]
    assert _read(videos['good1'], pipeline)['imgs'][0].shape == (32, 40, 3)
    with pytest.raises(VideoReadError, match='garbage.mp4'):
        _read(videos['garbage'], pipeline)


def test_sampler_rejects_a_video_without_frames():
    with pytest.raises(VideoReadError, match='no frames'):
        TRANSFORMS.build(READ[1])(dict(filename='x.mp4', total_frames=0,
                                       start_index=0))


def test_good_videos_read_exactly_as_without_the_guard(videos, monkeypatch):
    import mmaction.datasets.transforms.loading as loading
    guarded = _read(videos['good2'])['imgs']
    for cls in (loading.DecordInit, loading.DecordDecode,
                loading.SampleFrames):
        monkeypatch.setattr(cls, 'transform', cls.transform.__wrapped__)
    np.random.seed(0)
    plain = _read(videos['good2'])
    np.random.seed(0)
    monkeypatch.undo()
    again = _read(videos['good2'])
    assert all(np.array_equal(a, b) for a, b in zip(plain['imgs'],
                                                    again['imgs']))
    assert len(guarded) == 4
    assert install_video_guards() == []  # idempotent


def test_short_video_loops_unless_checked(videos):
    out = _read(videos['short'])  # 3 frames for a clip of 4 x stride 2
    assert out['total_frames'] == 3 and len(out['imgs']) == 4
    assert set(out['frame_inds'].tolist()) <= {0, 1, 2}
    strict = READ[:1] + [dict(type='CheckVideoLength', min_frames=7)] + \
        READ[1:]
    with pytest.raises(VideoReadError, match=r'short\.mp4.*3 frames'):
        _read(videos['short'], strict)
    assert len(_read(videos['good3'], strict)['imgs']) == 4


def _tiny_recognizer_cfg():
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'vivit_m2_k400.py'))
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                  feedforward_channels=64), img_size=32, num_frames=4,
        patch_size=8, num_temporal_layers=1)
    cfg.model.cls_head.update(in_channels=32, num_classes=3)
    return cfg


def test_inference_on_a_corrupt_file_names_it(videos):
    from mmaction.apis import inference_recognizer, init_recognizer
    cfg = _tiny_recognizer_cfg()
    cfg.test_pipeline = READ + [
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')]
    model = init_recognizer(cfg, None, device='cpu')
    scores = inference_recognizer(model, str(videos['good4'])).pred_scores
    assert scores.item.shape == (3, )
    for kind in ('truncated', 'missing'):
        with pytest.raises(VideoReadError, match=re.escape(
                str(videos[kind]))):
            inference_recognizer(model, str(videos[kind]))


# --------------------------------------------------------------------------
# Training on a list with broken entries.
def _ann(tmp_path, videos, names):
    lines = [f'{videos[n].name} {i % 3}' for i, n in enumerate(names)]
    path = tmp_path / 'list.txt'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


TRAIN_LIST = ['good0', 'missing', 'good1', 'good2', 'empty', 'good3',
              'good4', 'truncated', 'good5', 'short']


def _dataset_cfg(ann, videos, **kw):
    kw.setdefault('pipeline', READ + [
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')])
    return dict(type='VideoDataset', ann_file=ann,
                data_prefix=dict(video=str(videos['good0'].parent)), **kw)


def _train_runner(tmp_path, dataset, workers=0, hooks=()):
    cfg = _tiny_recognizer_cfg()
    return Runner(
        model=cfg.model, work_dir=str(tmp_path / 'wd'),
        train_dataloader=dict(dataset=dataset, batch_size=2,
                              num_workers=workers,
                              persistent_workers=workers > 0,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=list(hooks), default_scope='mmaction',
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), log_level='INFO',
        experiment_name=f'bad_videos_{os.getpid()}_{len(str(tmp_path))}'
        f'_{workers}_{len(hooks)}')


@pytest.mark.parametrize('workers', [0, 1])
def test_training_stops_at_the_first_bad_file_by_default(tmp_path, videos,
                                                         workers):
    ann = _ann(tmp_path, videos, TRAIN_LIST)
    runner = _train_runner(tmp_path, _dataset_cfg(ann, videos), workers)
    with pytest.raises(VideoReadError) as info:  # also from a worker
        runner.train()
    name = os.path.basename(info.value.filename)
    assert name in ('missing.mp4', 'empty.mp4', 'truncated.mp4')
    assert 'Cannot read video' in str(info.value)
    assert runner.epoch == 0  # stopped inside the first epoch
    iterator = getattr(runner.train_dataloader, '_iterator', None)
    if iterator is not None:
        iterator._shutdown_workers()


@pytest.mark.parametrize('workers', [0, 1])
def test_skip_bad_videos_completes_epochs_and_counts(tmp_path, videos,
                                                     workers):
    ann = _ann(tmp_path, videos, TRAIN_LIST)
    dataset = dict(type='SkipBadVideosDataset', max_bad_ratio=0.5,
                   dataset=_dataset_cfg(ann, videos))
    runner = _train_runner(tmp_path, dataset, workers,
                           hooks=[dict(type='SkippedVideosHook')])
    runner.train()
    loader = runner.train_dataloader
    iterator = getattr(loader, '_iterator', None)
    if iterator is not None:
        iterator._shutdown_workers()
    assert runner.epoch == 2 and runner.iter == 10  # 5 batches per epoch
    skipper = loader.dataset
    assert skipper.bad_indices() == [1, 4, 7]
    assert skipper.num_skipped == 6  # 3 bad files x 2 epochs
    log = ''.join(open(os.path.join(dp, f)).read()
                  for dp, _, fs in os.walk(tmp_path / 'wd') for f in fs
                  if f.endswith('.log'))
    for name in ('missing.mp4', 'empty.mp4', 'truncated.mp4'):
        # one warning per file, with the reason
        assert len(re.findall(rf'skipping unreadable video \S*{name}',
                              log)) == 1, name
    assert 'does not exist' in log and 'empty (0 bytes)' in log
    assert len(re.findall(r'Epoch \d: skipped 3 videos', log)) == 2
    assert runner.message_hub.get_info('skipped_videos') == 3


def test_too_many_bad_videos_stop_with_the_list(tmp_path, videos):
    ann = _ann(tmp_path, videos, TRAIN_LIST)
    skipper = DATASETS.build(dict(type='SkipBadVideosDataset',
                                  max_bad_ratio=0.25,
                                  dataset=_dataset_cfg(ann, videos)))
    # 2 of 10 unreadable are tolerated; the 3rd one (30%) stops the run.
    with pytest.raises(RuntimeError, match=r"3 of 10 videos \(30.0%\).*"
                       r"max_bad_ratio=0.25.*missing.mp4.*empty.mp4.*"
                       r"truncated.mp4"):
        for i in range(len(skipper)):
            skipper[i]


def test_substitutes_are_deterministic_and_other_errors_propagate(
        tmp_path, videos):
    ann = _ann(tmp_path, videos, TRAIN_LIST)
    a = SkipBadVideosDataset(_dataset_cfg(ann, videos), max_bad_ratio=1.0)
    b = SkipBadVideosDataset(_dataset_cfg(ann, videos), max_bad_ratio=1.0)
    np.random.seed(0)
    x = a[7]['inputs']
    np.random.seed(0)
    assert torch.equal(x, b[7]['inputs'])
    broken = SkipBadVideosDataset(_dataset_cfg(
        ann, videos, pipeline=READ + [dict(type='_BuggyTransform')]))
    with pytest.raises(ZeroDivisionError):  # a bug is not a bad file
        broken[0]
    assert broken.bad_indices() == []


@TRANSFORMS.register_module(force=True)
class _BuggyTransform(BaseTransform):

    def transform(self, results):
        return 1 / 0


def test_skipping_refuses_evaluation_data(tmp_path, videos):
    ann = _ann(tmp_path, videos, TRAIN_LIST)
    with pytest.raises(ValueError, match='test_mode=True'):
        SkipBadVideosDataset(_dataset_cfg(ann, videos, test_mode=True))


def test_train_tool_option_wraps_the_training_set():
    from importlib.machinery import SourceFileLoader
    train = SourceFileLoader('vivit_train_tool', os.path.join(
        REPO, 'tools', 'train.py')).load_module()
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'vivit_m2_k400.py'))
    original = cfg.train_dataloader.dataset.to_dict()
    merged = train.merge_args(cfg, train.parse_args(['x.py',
                                                     '--skip-bad-videos']))
    assert merged.train_dataloader.dataset.type == 'SkipBadVideosDataset'
    assert merged.train_dataloader.dataset.dataset.to_dict() == original
    assert 'SkippedVideosHook' in [h['type'] for h in merged.custom_hooks]
    assert merged.val_dataloader.dataset.type == 'VideoDataset'


def test_pipeline_bug_is_not_reported_as_a_bad_video(videos):
    # DecordDecode without SampleFrames: the missing 'frame_inds' is a
    # configuration error, raised as it is.
    with pytest.raises(KeyError, match='frame_inds'):
        _read(videos['good0'], [READ[0], READ[2]])
