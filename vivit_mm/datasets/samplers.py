"""``ResumableSampler``: mmengine's ``DefaultSampler`` that a resumed run can
continue in the middle of an epoch."""
from typing import Any, Dict, Iterator, Optional

from mmaction.registry import DATA_SAMPLERS
from mmengine.dataset import DefaultSampler

from ..utils import checks
from ..utils.rng import apply_rng_state
from .wrappers import ReproducibleDataset, find_wrapped


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """``DefaultSampler`` (same arguments, same order of indices) that

    * can start its next epoch after the first ``n`` of its indices, and
      restore generator states just before that epoch's first sample is
      loaded (:class:`~vivit_mm.engine.ExactResumeHook` does this after a
      resume from a mid-epoch checkpoint, and with the per-epoch seeded
      states at the start of every other epoch), and
    * tells a :class:`~vivit_mm.datasets.wrappers.ReproducibleDataset` in
      the data set the ``(seed, epoch)`` of every epoch it starts.

    Example::

        train_dataloader = dict(
            sampler=dict(type='ResumableSampler', shuffle=True), ...)
    """

    def __init__(self, dataset, shuffle: bool = True,
                 seed: Optional[int] = None, round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed,
                         round_up=round_up)
        self._skip = 0
        self._rng_state: Optional[Dict[str, Any]] = None

    def resume_after(self, num_samples: int,
                     rng_state: Optional[Dict[str, Any]] = None) -> None:
        """Make the next epoch skip its first ``num_samples`` indices of this
        rank and, if given, restore ``rng_state`` (see
        :func:`vivit_mm.utils.rng.apply_rng_state`) when it starts."""
        if num_samples != 0:
            checks.positive_int(num_samples, 'num_samples',
                                'ResumableSampler')
        self._skip, self._rng_state = num_samples, rng_state

    def __iter__(self) -> Iterator[int]:
        # Called when the DataLoader hands out the epoch's first index:
        # after its iterator drew its base seed, before any sample loads.
        reproducible = find_wrapped(self.dataset, ReproducibleDataset)
        if reproducible is not None:
            reproducible.set_epoch_seed(self.seed, self.epoch)
        indices = list(super().__iter__())
        skip, state = self._skip, self._rng_state
        self._skip, self._rng_state = 0, None
        if state is not None:
            apply_rng_state(state)
        return iter(indices[skip:])


__all__ = ['ResumableSampler']
