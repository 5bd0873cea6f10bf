"""Unreadable videos (missing, empty, truncated, undecodable, no frames)
stop a run with an error that names the file and the reason
(``VideoReadGuard``); short videos loop unless ``CheckVideoLength`` says
otherwise; a pipeline bug is not reported as a bad video."""
import os
import pickle
import re

import numpy as np
import pytest
from mmaction.registry import TRANSFORMS
from mmengine.dataset import Compose
from mmengine.runner import Runner

from tests.datasets.conftest import (READ, dataset_cfg, guard, mdat_span,
                                     read, tiny_recognizer_cfg, write_list,
                                     write_video)
from tests.engine.conftest import close_workers
from vivit_mm.compat import pred_score_of
from vivit_mm.datasets import VideoReadError
from vivit_mm.datasets.video_errors import iter_transforms

BAD = {
    'missing': 'does not exist',
    'empty': r'empty \(0 bytes\)',
    'truncated': 'could not be decoded',
    'truncated_faststart': 'could not be decoded',
    'garbage': 'could not be decoded',
    'damaged': 'could not be decoded',
    'no_frames': 'could not be decoded',
}


@pytest.mark.parametrize('kind', sorted(BAD))
def test_unreadable_video_error_names_file_and_reason(videos, kind):
    with pytest.raises(VideoReadError) as info:
        read(videos[kind])
    err = info.value
    assert err.filename == str(videos[kind])
    assert re.search(BAD[kind], err.reason)
    assert str(videos[kind]) in str(err) and 'SkipBadVideosDataset' in str(
        err)
    assert err.stage in ('DecordInit', 'DecordDecode')
    # It survives the trip from a DataLoader worker (pickled).
    again = pickle.loads(pickle.dumps(err))
    assert (again.filename, again.reason, again.stage) == (
        err.filename, err.reason, err.stage)


def test_decoder_failure_after_opening_is_named_too(tmp_path):
    # The second half of the frames is zeroed: the file opens, decoding
    # those frames fails (DecordDecode).
    write_video(tmp_path / 'long.mp4', 24, 64, 48)
    data = (tmp_path / 'long.mp4').read_bytes()
    start, size = mdat_span(data)
    cut = start + size // 2
    path = tmp_path / 'half_damaged.mp4'
    path.write_bytes(data[:cut] + bytes(start + size - 8 - cut) +
                     data[start + size - 8:])
    results = read(path, [guard(READ[:1])])
    assert results['total_frames'] == 24
    results['frame_inds'] = np.arange(18, 24)
    with pytest.raises(VideoReadError) as info:
        Compose([guard(READ[2:])])(results)
    assert info.value.stage == 'DecordDecode'
    assert info.value.filename == str(path)
    assert 'could not be decoded' in info.value.reason


def test_opencv_reader_is_guarded(videos):
    pipeline = [guard([dict(type='OpenCVInit'), READ[1],
                       dict(type='OpenCVDecode')])]
    assert read(videos['good1'], pipeline)['imgs'][0].shape == (32, 40, 3)
    with pytest.raises(VideoReadError, match='garbage.mp4'):
        read(videos['garbage'], pipeline)


def test_guard_rejects_a_video_without_frames_before_the_sampler():
    sampler = guard([READ[1]])
    with pytest.raises(VideoReadError, match='no frames') as info:
        TRANSFORMS.build(sampler)(dict(filename='x.mp4', total_frames=0,
                                       start_index=0))
    assert info.value.stage == 'SampleFrames'
    assert info.value.filename == 'x.mp4'


def test_good_videos_read_exactly_as_without_the_guard(videos):
    np.random.seed(0)
    guarded = read(videos['good2'])
    np.random.seed(0)
    plain = read(videos['good2'], READ)
    assert len(guarded['imgs']) == 4
    assert np.array_equal(guarded['frame_inds'], plain['frame_inds'])
    assert all(np.array_equal(a, b) for a, b in zip(guarded['imgs'],
                                                    plain['imgs']))


def test_short_video_loops_unless_checked(videos):
    out = read(videos['short'])  # 3 frames for a clip of 4 x stride 2
    assert out['total_frames'] == 3 and len(out['imgs']) == 4
    assert set(out['frame_inds'].tolist()) <= {0, 1, 2}
    strict = [guard(READ[:1] + [dict(type='CheckVideoLength', min_frames=7)]
                    + READ[1:])]
    with pytest.raises(VideoReadError, match=r'short\.mp4.*3 frames'):
        read(videos['short'], strict)
    assert len(read(videos['good3'], strict)['imgs']) == 4


def test_pipeline_bug_is_not_reported_as_a_bad_video(videos):
    # DecordDecode without SampleFrames: the missing 'frame_inds' is a
    # configuration error, raised as it is.
    with pytest.raises(KeyError, match='frame_inds'):
        read(videos['good0'], [guard([READ[0], READ[2]])])
    with pytest.raises(KeyError, match='total_frames'):
        read(videos['good0'], [dict(type='CheckVideoLength', min_frames=2)])


def test_iter_transforms_sees_inside_the_guard():
    pipeline = [guard(), dict(type='Resize', scale=(32, 32))]
    assert [t['type'] for t in iter_transforms(pipeline)] == [
        'VideoReadGuard', 'DecordInit', 'SampleFrames', 'DecordDecode',
        'Resize']


def test_inference_on_a_corrupt_file_names_it(videos):
    from mmaction.apis import inference_recognizer, init_recognizer
    cfg = tiny_recognizer_cfg()
    cfg.test_pipeline = [guard()] + [
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')]
    model = init_recognizer(cfg, None, device='cpu')
    scores = pred_score_of(inference_recognizer(model, str(videos['good4'])))
    assert scores.shape == (3, )
    with pytest.raises(VideoReadError, match=re.escape(
            str(videos['truncated']))):
        inference_recognizer(model, str(videos['truncated']))
    # MMAction2 1.2's inference_recognizer refuses a path that does not
    # exist itself (a RuntimeError) before the pipeline runs; 1.1 leaves it
    # to the pipeline, whose guard names the file.
    import mmaction
    from mmengine.utils import digit_version
    missing = VideoReadError if digit_version(
        mmaction.__version__) < digit_version('1.2.0') else RuntimeError
    with pytest.raises(missing):
        inference_recognizer(model, str(videos['missing']))


@pytest.mark.parametrize('workers', [0, 1])
def test_training_stops_at_the_first_bad_file_by_default(tmp_path, videos,
                                                         workers):
    ann = write_list(tmp_path, videos)
    runner = Runner(
        model=tiny_recognizer_cfg().model, work_dir=str(tmp_path / 'wd'),
        train_dataloader=dict(dataset=dataset_cfg(ann, videos),
                              batch_size=2, num_workers=workers,
                              persistent_workers=workers > 0,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_scope='mmaction', randomness=dict(seed=0),
        log_level='WARNING',
        experiment_name=f'bad_videos_{os.getpid()}_{workers}')
    with pytest.raises(VideoReadError) as info:  # also from a worker
        runner.train()
    name = os.path.basename(info.value.filename)
    assert name in ('missing.mp4', 'empty.mp4', 'truncated.mp4')
    assert 'Cannot read video' in str(info.value)
    assert runner.epoch == 0  # stopped inside the first epoch
    close_workers(runner)
