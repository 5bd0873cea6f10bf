"""``ResumableSampler``: mmengine's ``DefaultSampler`` order, an epoch that
starts after its first n indices with restored generator states, and the
epoch seed handed to a ``ReproducibleDataset``."""
import random

import numpy as np
import pytest
import torch
from mmaction.registry import DATA_SAMPLERS
from mmengine.dataset import DefaultSampler

from vivit_mm.datasets import (ReproducibleDataset, ResumableSampler,
                               SkipBadVideosDataset)
from vivit_mm.utils.rng import capture_rng_state

DATA = list(range(10))


@pytest.mark.parametrize('shuffle, round_up', [(True, True), (False, True),
                                               (True, False)])
def test_same_indices_as_the_default_sampler(shuffle, round_up):
    ours = DATA_SAMPLERS.build(dict(type='ResumableSampler', dataset=DATA,
                                    shuffle=shuffle, seed=3,
                                    round_up=round_up))
    theirs = DefaultSampler(DATA, shuffle=shuffle, seed=3, round_up=round_up)
    for epoch in range(3):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


def test_resume_after_skips_once_and_restores_the_generators():
    sampler = ResumableSampler(DATA, shuffle=True, seed=3)
    sampler.set_epoch(1)
    full = list(sampler)
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    state = capture_rng_state(cuda=False)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    sampler.resume_after(4, state)
    torch.manual_seed(6)  # what happened in between
    assert list(sampler) == full[4:]
    got = (random.random(), np.random.rand(), torch.rand(1))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])
    # Only that epoch: the next one is whole and touches no generator.
    sampler.set_epoch(2)
    before = torch.get_rng_state()
    assert len(list(sampler)) == 10
    assert torch.equal(torch.get_rng_state(), before)
    sampler.resume_after(0)  # nothing to skip is fine
    assert len(list(sampler)) == 10


@pytest.mark.parametrize('n', [-1, 2.5, True])
def test_resume_after_rejects_bad_counts(n):
    with pytest.raises(ValueError, match='num_samples must be'):
        ResumableSampler(DATA).resume_after(n)


class _Draw:
    """Sample i: a draw of Python's generator."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return random.random()


def test_tells_a_reproducible_dataset_the_epoch_seed():
    inner = ReproducibleDataset(_Draw())
    wrapped = SkipBadVideosDataset(inner, max_bad_ratio=1.0)
    with pytest.raises(RuntimeError, match='ResumableSampler'):
        wrapped[2]
    sampler = ResumableSampler(wrapped, shuffle=True, seed=11)
    sampler.set_epoch(4)
    iter(sampler)
    reference = ReproducibleDataset(_Draw())
    reference.set_epoch_seed(11, 4)
    assert wrapped[2] == reference[2]
    reference.set_epoch_seed(11, 5)
    assert wrapped[2] != reference[2]
