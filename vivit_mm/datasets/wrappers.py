"""Training data set wrappers, named in configs.

* :class:`SkipBadVideosDataset`: an unreadable video is replaced by another
  sample (with a warning per file) instead of stopping the run.
* :class:`ReproducibleDataset`: every sample's random augmentation is drawn
  from generators seeded with ``(seed, epoch, index)``, so it does not
  depend on which DataLoader worker loads it, on persistent workers or on
  where a run was resumed. Used with
  :class:`~vivit_mm.datasets.samplers.ResumableSampler`, which tells it the
  epoch, and :class:`~vivit_mm.engine.ExactResumeHook`.
"""
import copy
import logging
from typing import Any, List, Optional, Type, Union

import numpy as np
import torch
from mmaction.registry import DATASETS
from mmengine.logging import print_log

from ..utils import checks
from ..utils.rng import apply_rng_state, capture_rng_state, seed_cpu
from .video_errors import VideoReadError

# Per-process skip counters (index 0: the main process, 1 + i: DataLoader
# worker i); each slot has a single writer, so no lock is needed.
_COUNTER_SLOTS = 257
# Substitutes tried for one sample before giving up.
_MAX_ATTEMPTS = 100


def _build(dataset: Union[dict, Any], who: str) -> Any:
    if isinstance(dataset, dict):
        return DATASETS.build(dataset)
    if not hasattr(dataset, '__getitem__'):
        raise TypeError(f'{who}: dataset must be a data set or its config '
                        f'dict, got {type(dataset).__name__}.')
    return dataset


def find_wrapped(dataset: Any, kind: Type) -> Optional[Any]:
    """The data set of type ``kind`` in ``dataset`` or among the
    ``dataset``/``datasets`` attributes of the wrappers around it."""
    todo = [dataset]
    while todo:
        ds = todo.pop()
        if isinstance(ds, kind):
            return ds
        if hasattr(ds, 'dataset'):
            todo.append(ds.dataset)
        todo.extend(getattr(ds, 'datasets', None) or [])
    return None


class _Wrapper:
    """What a data set wrapper passes through to the wrapped data set."""

    dataset: Any

    @property
    def metainfo(self) -> dict:
        """The wrapped data set's meta information."""
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def get_data_info(self, idx: int) -> dict:
        """The wrapped data set's annotation of sample ``idx``."""
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)


@DATASETS.register_module()
class SkipBadVideosDataset(_Wrapper):
    """Training data set wrapper that skips unreadable videos.

    When a sample's pipeline raises :class:`VideoReadError` (missing,
    empty, truncated or undecodable file, a video without frames, or one
    rejected by :class:`CheckVideoLength`), it logs a warning naming the
    file and the reason (once per file), remembers the index and returns
    another sample instead, so the epoch completes with the same number of
    iterations. The substitute is a deterministic function of the index, so
    a resumed run makes the same choices. Any other exception still stops
    the run: it is a bug, not a bad file.

    Counts are kept in shared memory, so they include the samples loaded by
    DataLoader workers; ``SkippedVideosHook`` logs them every epoch.

    Example::

        train_dataloader = dict(
            dataset=dict(type='SkipBadVideosDataset', max_bad_ratio=0.05,
                         dataset=dict(type='VideoDataset', ...)))
        custom_hooks = [dict(type='SkippedVideosHook')]

    Args:
        dataset (dict | Dataset): The training data set or its config.
        max_bad_ratio (float): Stop with an error once more than this
            fraction of the data set's videos has been found unreadable (a
            wrong ``data_prefix`` should not silently train on nothing).
            ``1.0`` never stops. Defaults to 0.1.
        lazy_init (bool): Defer ``full_init``. Defaults to False.

    Raises:
        ValueError: ``max_bad_ratio`` is not in [0, 1], or ``dataset`` is
            in test mode (a substitute would bias the evaluation).
    """

    def __init__(self,
                 dataset: Union[dict, Any],
                 max_bad_ratio: float = 0.1,
                 lazy_init: bool = False) -> None:
        max_bad_ratio = checks.probability(max_bad_ratio, 'max_bad_ratio',
                                           'SkipBadVideosDataset')
        dataset = _build(dataset, 'SkipBadVideosDataset')
        if getattr(dataset, 'test_mode', False):
            raise ValueError(
                'SkipBadVideosDataset wraps training data only, got a data '
                'set with test_mode=True: evaluating on substitutes would '
                'bias the metric. Remove or fix the files the error names.')
        self.dataset = dataset
        self.max_bad_ratio = max_bad_ratio
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Initialise the wrapped data set and the shared counters."""
        if self._fully_initialized:
            return
        super().full_init()
        n = len(self.dataset)
        self._bad = torch.zeros(n, dtype=torch.uint8).share_memory_()
        self._skips = torch.zeros(_COUNTER_SLOTS,
                                  dtype=torch.int64).share_memory_()
        self._fully_initialized = True

    @property
    def num_skipped(self) -> int:
        """Samples replaced by a substitute so far (all processes)."""
        return int(self._skips.sum())

    def bad_indices(self) -> List[int]:
        """Indices found unreadable so far (all processes)."""
        return torch.nonzero(self._bad).flatten().tolist()

    def bad_files(self) -> List[str]:
        """Files found unreadable so far (all processes)."""
        return [self._filename(i) for i in self.bad_indices()]

    def _filename(self, idx: int) -> str:
        try:
            info = self.get_data_info(idx)
        except Exception:  # an odd data set: still report the index
            return f'<sample {idx}>'
        return str(info.get('filename', info.get('img_path', idx)))

    def _slot(self) -> int:
        info = torch.utils.data.get_worker_info()
        return 0 if info is None else (info.id + 1) % _COUNTER_SLOTS

    def _mark_bad(self, idx: int, err: VideoReadError) -> None:
        """Remember ``idx``, warn once, stop if too much data is bad."""
        if not self._bad[idx]:
            self._bad[idx] = 1
            print_log(
                f'SkipBadVideosDataset: skipping unreadable video '
                f'{err.filename!r}: {err.reason} (sample {idx}; a '
                'substitute sample is used instead).',
                logger='current', level=logging.WARNING)
        n_bad, n = int(self._bad.sum()), len(self)
        if n_bad > self.max_bad_ratio * n:
            files = ', '.join(repr(f) for f in self.bad_files()[:10])
            raise RuntimeError(
                f'SkipBadVideosDataset: {n_bad} of {n} videos '
                f'({100.0 * n_bad / n:.1f}%) are unreadable, more than '
                f'max_bad_ratio={self.max_bad_ratio} allows; check '
                f'ann_file and data_prefix. Unreadable: {files}'
                + (' ...' if n_bad > 10 else '')) from err

    def _substitute(self, idx: int, attempt: int) -> int:
        """Deterministic replacement for ``idx`` (the global RNGs are not
        touched, so augmentation draws are unaffected)."""
        rng = np.random.default_rng([idx, attempt, 0x5b1d])
        return int(rng.integers(len(self)))

    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            self.full_init()
        cur = idx
        for attempt in range(_MAX_ATTEMPTS):
            if not self._bad[cur]:
                try:
                    data = self.dataset[cur]
                except VideoReadError as err:
                    self._mark_bad(cur, err)
                else:
                    if cur != idx:
                        self._skips[self._slot()] += 1
                    return data
            cur = self._substitute(idx, attempt)
        raise RuntimeError(
            f'SkipBadVideosDataset: found no readable video in '
            f'{_MAX_ATTEMPTS} tries for sample {idx}; '
            f'{int(self._bad.sum())} of {len(self)} videos are unreadable.')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_bad_ratio='
                f'{self.max_bad_ratio}, dataset={self.dataset!r})')


@DATASETS.register_module()
class ReproducibleDataset(_Wrapper):
    """Draw every sample's random augmentation from generators seeded with
    ``(seed, epoch, index)``.

    Before sample ``index`` of epoch ``epoch`` is loaded, Python's
    ``random``, NumPy's global generator and torch's CPU generator are seeded
    from ``SeedSequence(seed, epoch, index)``. The draws then depend neither
    on the DataLoader worker that loads the sample, nor on whether workers
    are persistent, nor on where a run was resumed, so
    :class:`~vivit_mm.engine.ExactResumeHook` can resume a run exactly with
    any number of workers. In the main process (``num_workers=0``) the
    generators' states are restored after the sample, so the model's own
    random draws (dropout, drop path) are unaffected.

    The seed and epoch come from the training sampler, which must be
    :class:`~vivit_mm.datasets.samplers.ResumableSampler` (it sets them at
    the start of every epoch; ``sampler.seed`` is the same on every rank).

    Example::

        train_dataloader = dict(
            sampler=dict(type='ResumableSampler', shuffle=True),
            dataset=dict(type='ReproducibleDataset',
                         dataset=dict(type='VideoDataset', ...)))

    Args:
        dataset (dict | Dataset): The training data set or its config.
        lazy_init (bool): Defer ``full_init``. Defaults to False.
    """

    def __init__(self, dataset: Union[dict, Any],
                 lazy_init: bool = False) -> None:
        self.dataset = _build(dataset, 'ReproducibleDataset')
        # [seed, epoch], shared with the DataLoader workers; -1: not set.
        self._epoch_seed = torch.full((2, ), -1,
                                      dtype=torch.int64).share_memory_()
        if not lazy_init:
            self.full_init()

    def set_epoch_seed(self, seed: int, epoch: int) -> None:
        """Use ``(seed, epoch)`` for the samples loaded from now on (called
        by the sampler before the first index of an epoch is handed out)."""
        self._epoch_seed[0] = int(seed)
        self._epoch_seed[1] = int(epoch)

    def __getitem__(self, idx: int) -> Any:
        seed, epoch = self._epoch_seed.tolist()
        if seed < 0:
            raise RuntimeError(
                'ReproducibleDataset got no seed and epoch: use it with '
                "sampler=dict(type='ResumableSampler') in the training "
                'data loader, which sets them every epoch.')
        in_main = torch.utils.data.get_worker_info() is None
        saved = capture_rng_state(cuda=False) if in_main else None
        seed_cpu(seed, epoch, idx, 3)
        try:
            return self.dataset[idx]
        finally:
            if saved is not None:
                apply_rng_state(saved)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(dataset={self.dataset!r})'


__all__ = ['SkipBadVideosDataset', 'ReproducibleDataset', 'find_wrapped']
