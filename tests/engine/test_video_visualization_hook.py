"""VideoVisualizationHook: the frames it draws of packed test views, its
arguments it refuses and the names of what it writes."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vivit_mm.engine import VideoVisualizationHook
from vivit_mm.engine.hooks.video_visualization_hook import sample_frames


def test_sample_frames_lays_views_out_in_time():
    views = torch.arange(3 * 3 * 4 * 2 * 5, dtype=torch.float32)
    views = views.reshape(3, 3, 4, 2, 5) % 256  # [V, C, T, H, W]
    first = sample_frames(views)
    assert first.shape == (4, 2, 5, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first[1, :, :, 2], views[0, 2, 1].numpy())
    every = sample_frames(views, max_views=None)
    assert every.shape == (12, 2, 5, 3)
    np.testing.assert_array_equal(every[4 + 3, :, :, 0],
                                  views[1, 0, 3].numpy())
    assert sample_frames(views, max_views=2).shape == (8, 2, 5, 3)
    nchw = sample_frames(torch.zeros(6, 3, 2, 5))  # 2D recognizers
    assert nchw.shape == (6, 2, 5, 3)
    with pytest.raises(ValueError, match=r'NCTHW.*got \(3, 2, 5\)'):
        sample_frames(torch.zeros(3, 2, 5))


@pytest.mark.parametrize('key', ['out_path', 'show_frames', 'step'])
def test_arguments_the_hook_sets_are_refused(key):
    # (interval and max_views: tests/test_options.py)
    with pytest.raises(ValueError, match=f"'{key}' is set by the hook"):
        VideoVisualizationHook(**{key: 1})


def test_names_come_from_the_sample_or_the_unshuffled_dataset():
    name = VideoVisualizationHook._name

    class Dataset:
        def __len__(self):
            return 2

        def get_data_info(self, i):
            return dict(filename=f'/data/clip{i}.mp4')

    ordered = SimpleNamespace(dataset=Dataset(),
                              sampler=SimpleNamespace(shuffle=False))
    shuffled = SimpleNamespace(dataset=Dataset(),
                               sampler=SimpleNamespace(shuffle=True))
    sample = {}
    assert name(sample, ordered, 1) == 'clip1.mp4'
    assert name(sample, shuffled, 1) == '1'  # index order unknown
    assert name(sample, ordered, 5) == '5'
    assert name(dict(filename='/x/own.mp4'), shuffled, 0) == 'own.mp4'
