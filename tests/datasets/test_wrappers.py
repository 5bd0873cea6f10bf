"""Training data set wrappers: ``SkipBadVideosDataset`` replaces unreadable
videos (and only those) by deterministic substitutes, within a bound;
``ReproducibleDataset`` draws every sample's augmentation from (seed, epoch,
index), whatever the DataLoader workers, and leaves the main process's
generators alone."""
import random

import numpy as np
import pytest
import torch
from mmaction.registry import DATASETS, TRANSFORMS
from mmcv.transforms import BaseTransform
from torch.utils.data import DataLoader, Dataset

from tests.datasets.conftest import dataset_cfg, guard, write_list
from vivit_mm.datasets import (ReproducibleDataset, ResumableSampler,
                               SkipBadVideosDataset)
from vivit_mm.datasets.wrappers import find_wrapped
from vivit_mm.utils.rng import capture_rng_state


# --------------------------------------------------------------------------
# SkipBadVideosDataset.
def test_too_many_bad_videos_stop_with_the_list(tmp_path, videos):
    ann = write_list(tmp_path, videos)
    skipper = DATASETS.build(dict(type='SkipBadVideosDataset',
                                  max_bad_ratio=0.25,
                                  dataset=dataset_cfg(ann, videos)))
    # 2 of 10 unreadable are tolerated; the 3rd one (30%) stops the run.
    with pytest.raises(RuntimeError, match=r"3 of 10 videos \(30.0%\).*"
                       r"max_bad_ratio=0.25.*missing.mp4.*empty.mp4.*"
                       r"truncated.mp4"):
        for i in range(len(skipper)):
            skipper[i]


@TRANSFORMS.register_module(force=True)
class _BuggyTransform(BaseTransform):

    def transform(self, results):
        return 1 / 0


def test_substitutes_are_deterministic_and_other_errors_propagate(
        tmp_path, videos):
    ann = write_list(tmp_path, videos)
    a = SkipBadVideosDataset(dataset_cfg(ann, videos), max_bad_ratio=1.0)
    b = SkipBadVideosDataset(dataset_cfg(ann, videos), max_bad_ratio=1.0)
    np.random.seed(0)
    x = a[7]['inputs']
    np.random.seed(0)
    assert torch.equal(x, b[7]['inputs'])
    assert a.bad_indices() == b.bad_indices() == [7]
    assert a.num_skipped == 1 and a.bad_files() == [str(videos['truncated'])]
    broken = SkipBadVideosDataset(dataset_cfg(
        ann, videos, pipeline=[guard(), dict(type='_BuggyTransform')]))
    with pytest.raises(ZeroDivisionError):  # a bug is not a bad file
        broken[0]
    assert broken.bad_indices() == []


def test_skipping_refuses_evaluation_data(tmp_path, videos):
    ann = write_list(tmp_path, videos)
    with pytest.raises(ValueError, match='test_mode=True'):
        SkipBadVideosDataset(dataset_cfg(ann, videos, test_mode=True))


def test_find_wrapped_looks_through_wrappers():
    inner = ReproducibleDataset(_Draws())
    outer = SkipBadVideosDataset(inner, max_bad_ratio=1.0)
    assert find_wrapped(outer, ReproducibleDataset) is inner
    assert find_wrapped(outer, SkipBadVideosDataset) is outer
    assert find_wrapped(torch.utils.data.ConcatDataset([outer]),
                        ReproducibleDataset) is inner
    assert find_wrapped(_Draws(), ReproducibleDataset) is None


# --------------------------------------------------------------------------
# ReproducibleDataset.
class _Draws(Dataset):
    """Sample i: its index and one draw from each global generator (what a
    random augmentation does)."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return dict(index=i, draws=torch.tensor([
            random.random(), np.random.rand(), torch.rand(1).item()],
            dtype=torch.float64))


def _epochs(workers, persistent, epochs=2, batch_size=3):
    """{(epoch, index): draws} of loading ``epochs`` epochs."""
    dataset = ReproducibleDataset(_Draws())
    sampler = ResumableSampler(dataset, shuffle=True, seed=7)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                        num_workers=workers, persistent_workers=persistent)
    out = {}
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            for i, d in zip(batch['index'].tolist(), batch['draws']):
                out[epoch, i] = d
    return out


def test_same_augmentation_for_an_index_whatever_the_workers():
    reference = _epochs(0, False)
    assert len(reference) == 24
    for workers, persistent in ((1, False), (2, False), (2, True)):
        got = _epochs(workers, persistent)
        assert got.keys() == reference.keys()
        for key, value in reference.items():
            assert torch.equal(got[key], value), (workers, persistent, key)
    # New draws for every index and every epoch.
    values = {tuple(v.tolist()) for v in reference.values()}
    assert len(values) == 24


def test_loading_in_the_main_process_leaves_its_generators_alone():
    dataset = ReproducibleDataset(_Draws())
    dataset.set_epoch_seed(7, 0)
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    before = capture_rng_state(cuda=False)
    first = dataset[3]['draws']
    after = capture_rng_state(cuda=False)
    assert after['python'] == before['python']
    assert torch.equal(after['numpy']['keys'], before['numpy']['keys'])
    assert after['numpy']['pos'] == before['numpy']['pos']
    assert torch.equal(after['torch'], before['torch'])
    # ... and the sample's draws do not depend on them.
    torch.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    assert torch.equal(dataset[3]['draws'], first)
    dataset.set_epoch_seed(7, 1)
    assert not torch.equal(dataset[3]['draws'], first)


def test_reproducible_dataset_needs_the_sampler():
    dataset = DATASETS.build(dict(type='ReproducibleDataset',
                                  dataset=_Draws()))
    assert len(dataset) == 12
    with pytest.raises(RuntimeError, match="sampler=dict\\(type="
                       "'ResumableSampler'\\)"):
        dataset[0]
