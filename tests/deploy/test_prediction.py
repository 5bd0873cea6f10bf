"""vivit_mm.deploy.prediction: the sliding windows, the frames each window's
clip samples and the test pipeline without its frame sampler (the model
runs in tests/tools/test_demo.py)."""
import numpy as np
import pytest
from mmaction.registry import TRANSFORMS
from mmengine.registry import init_default_scope

from vivit_mm.deploy.prediction import (clip_frame_inds, clip_sampling,
                                        frame_windows, window_pipeline,
                                        window_starts)


@pytest.mark.parametrize('n,length,stride,starts', [
    (64, 16, 16, [0, 16, 32, 48]),      # side by side, exact
    (70, 16, 16, [0, 16, 32, 48, 54]),  # one more window ends at the end
    (64, 16, 8, list(range(0, 49, 8))),  # overlapping
    (10, 16, 4, [0]),                   # shorter than a window
    (16, 16, 3, [0]),
    (20, 16, 100, [0, 4]),              # stride longer than the video
])
def test_window_starts(n, length, stride, starts):
    assert window_starts(n, length, stride) == starts
    owner = frame_windows(n, starts, length)
    assert (owner >= 0).all()  # every frame is in a window
    for f in range(n):  # the latest window that covers the frame
        covering = [w for w, s in enumerate(starts) if s <= f < s + length]
        assert owner[f] == max(covering)


@pytest.mark.parametrize('bad', [dict(num_frames=0), dict(length=0),
                                 dict(stride=0)])
def test_window_starts_rejects_non_positive(bad):
    kwargs = {**dict(num_frames=10, length=4, stride=2), **bad}
    with pytest.raises(ValueError, match='must be a positive int'):
        window_starts(**kwargs)


@pytest.mark.parametrize('clip_len,interval', [(4, 2), (8, 1), (3, 3)])
def test_clip_frame_inds_are_sample_frames_test_mode_in_the_window(
        clip_len, interval):
    """One test-mode clip of MMAction2's SampleFrames over a window of
    exactly clip_len x interval frames, shifted to the window's start."""
    init_default_scope('mmaction')
    length = clip_len * interval
    sampler = TRANSFORMS.build(dict(type='SampleFrames', clip_len=clip_len,
                                    frame_interval=interval, num_clips=1,
                                    test_mode=True))
    ref = sampler(dict(total_frames=length, start_index=0))['frame_inds']
    for start in (0, 5, 17):
        np.testing.assert_array_equal(
            clip_frame_inds(start, clip_len, interval, 100), ref + start)
    # A video shorter than the clip wraps around.
    assert clip_frame_inds(0, 4, 2, 3).tolist() == [0, 2, 1, 0]


def _pipeline(*samplers):
    return [dict(type='VideoReadGuard', transforms=[
        dict(type='DecordInit'), *samplers, dict(type='DecordDecode')]),
        dict(type='Resize', scale=(-1, 32)),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')]


def test_clip_sampling_and_window_pipeline():
    sampler = dict(type='SampleFrames', clip_len=8, frame_interval=4,
                   num_clips=4, test_mode=True)
    pipeline = _pipeline(sampler)
    assert clip_sampling(pipeline) == (8, 4)
    init_default_scope('mmaction')
    composed = window_pipeline(pipeline)
    guard = composed.transforms[0]
    assert [type(t).__name__ for t in guard.transforms] == [
        'DecordInit', 'DecordDecode']
    assert len(pipeline[0]['transforms']) == 3  # the config is unchanged
    for bad in (_pipeline(), _pipeline(sampler, sampler)):
        with pytest.raises(ValueError, match='exactly one SampleFrames'):
            clip_sampling(bad)
