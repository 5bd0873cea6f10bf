"""Unreadable videos: a clear error that names the file, or a documented
option that skips them.

MMAction2's video transforms fail on a missing, empty, truncated or
undecodable file with messages that do not say which file it was (decord
reads from an in-memory copy and reports e.g. ``Error reading 13767
bytes...``). On ``import vivit_mm``, :func:`install_video_guards` wraps the
``transform`` method of MMAction2's video readers (``DecordInit``,
``DecordDecode``, ``PyAVInit``, ``PyAVDecode``, ``OpenCVInit``,
``OpenCVDecode``, ``PIMSInit``, ``PIMSDecode``) so that any failure there is
re-raised as :class:`VideoReadError` naming the file and the reason, and the
frame samplers (``SampleFrames`` and friends) reject a video with no frames.
Good videos are processed exactly as before (the wrapper only adds a
``try``). Training data sets, ``Runner.test()`` and
``mmaction.apis.inference_recognizer`` all go through these transforms.

A video shorter than the clip is not an error: ``SampleFrames`` loops over
its frames (MMAction2's behaviour). Put :class:`CheckVideoLength` after the
``*Init`` transform to treat such videos as unreadable instead.

:class:`SkipBadVideosDataset` wraps a training data set and replaces an
unreadable sample by another one, with a warning per file; the hook
``SkippedVideosHook`` logs the count at the end of every epoch.
"""
import copy
import functools
import logging
import os
import re
from typing import Any, Callable, List, Optional, Union

import mmaction.datasets.transforms  # noqa: F401  (registers the readers)
import numpy as np
import torch
from mmaction.registry import DATASETS, TRANSFORMS
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

# MMAction2 transforms that open or decode a video file.
VIDEO_READERS = ('DecordInit', 'DecordDecode', 'PyAVInit', 'PyAVDecode',
                 'PyAVDecodeMotionVector', 'OpenCVInit', 'OpenCVDecode',
                 'PIMSInit', 'PIMSDecode')
# MMAction2 transforms that sample frame indices from ``total_frames``.
FRAME_SAMPLERS = ('SampleFrames', 'DenseSampleFrames', 'UniformSample',
                  'UntrimmedSampleFrames')

SKIP_HINT = ('To skip unreadable training videos instead of stopping, wrap '
             "the training data set in dict(type='SkipBadVideosDataset', "
             'dataset=...) or run tools/train.py with --skip-bad-videos '
             '(docs/reliability.md).')


class VideoReadError(RuntimeError):
    """A video file could not be read.

    Attributes:
        filename (str): The file.
        reason (str): What went wrong, in words.
        stage (str): The transform that failed.
    """

    def __init__(self, filename: str, reason: Optional[str] = None,
                 stage: Optional[str] = None) -> None:
        if reason is None:
            # Re-raised from a DataLoader worker with the formatted message.
            found = re.search(r"Cannot read video '(.*?)': ", filename)
            self.filename = found.group(1) if found else None
            self.reason, self.stage = None, None
            super().__init__(filename)
            return
        self.filename, self.reason, self.stage = filename, reason, stage
        where = f' [{stage}]' if stage else ''
        super().__init__(f'Cannot read video {filename!r}: {reason}{where}. '
                         f'{SKIP_HINT}')

    def __reduce__(self):  # keeps the fields when pickled
        if self.reason is None:
            return (type(self), (str(self), ))
        return (type(self), (self.filename, self.reason, self.stage))


def _short(err: BaseException, limit: int = 200) -> str:
    """The informative part of a decoder's error: its last non-empty line
    without decord's ``[time] file.cc:123:`` prefixes, printable, short."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(err).__name__
    text = re.sub(r'\[\d\d:\d\d:\d\d\]\s*\S+:\d+:\s*', '', text)
    text = ''.join(c if c.isprintable() else '?' for c in text)
    if len(text) > limit:
        text = text[:limit] + '...'
    return f'{type(err).__name__}: {text}'


def _local_path(filename: Any) -> Optional[str]:
    """``filename`` as a local path, or None for URLs/other backends."""
    if not isinstance(filename, (str, os.PathLike)):
        return None
    path = os.fspath(filename)
    return None if '://' in path else path


def diagnose(filename: str, err: Optional[BaseException] = None) -> str:
    """Why ``filename`` could not be read, in words: missing, empty, or
    not decodable (with the decoder's message)."""
    path = _local_path(filename)
    if path is not None:
        # DecordInit appends '.mp4' to a name without an extension.
        candidates = [path] + ([path + '.mp4']
                               if os.path.splitext(path)[1] == '' else [])
        existing = [p for p in candidates if os.path.exists(p)]
        if not existing:
            return 'the file does not exist'
        if os.path.isdir(existing[0]):
            return 'it is a directory, not a video file'
        size = os.path.getsize(existing[0])
        if size == 0:
            return 'the file is empty (0 bytes)'
        detail = f' ({_short(err)})' if err is not None else ''
        return (f'the file ({size} bytes) could not be decoded{detail}; it is '
                'probably truncated, damaged or not a video')
    return f'it could not be read ({_short(err)})' if err else 'unreadable'


def _guard_reader(transform: Callable) -> Callable:
    """Wrap a reader's ``transform``: failures become VideoReadError."""

    @functools.wraps(transform)
    def guarded(self, results: dict) -> dict:
        try:
            return transform(self, results)
        except (VideoReadError, ImportError, MemoryError):
            raise
        except KeyError as err:
            if err.args and err.args[0] not in results:
                raise  # a key the pipeline did not provide: a config bug
            raise VideoReadError(str(results.get('filename', '?')),
                                 diagnose(results.get('filename'), err),
                                 type(self).__name__) from err
        except Exception as err:
            filename = results.get('filename', '<no filename>')
            raise VideoReadError(str(filename), diagnose(filename, err),
                                 type(self).__name__) from err

    guarded._vivit_video_guard = True
    return guarded


def _guard_sampler(transform: Callable) -> Callable:
    """Wrap a frame sampler's ``transform``: a video without frames is a
    VideoReadError (MMAction2 would divide by zero or index nothing)."""

    @functools.wraps(transform)
    def guarded(self, results: dict) -> dict:
        total = results.get('total_frames')
        if total is not None and total < 1:
            raise VideoReadError(
                str(results.get('filename', '<no filename>')),
                f'the video has no frames (total_frames={total})',
                type(self).__name__)
        return transform(self, results)

    guarded._vivit_video_guard = True
    return guarded


def install_video_guards() -> List[str]:
    """Wrap MMAction2's video readers and frame samplers (idempotent).

    Returns:
        list[str]: The transforms that were wrapped by this call.
    """
    done = []
    for names, guard in ((VIDEO_READERS, _guard_reader),
                         (FRAME_SAMPLERS, _guard_sampler)):
        for name in names:
            cls = TRANSFORMS.get(name)
            fn = None if cls is None else cls.__dict__.get('transform')
            if fn is None or getattr(fn, '_vivit_video_guard', False):
                continue  # inherits a guarded transform, or already done
            cls.transform = guard(fn)
            done.append(name)
    return done


@TRANSFORMS.register_module()
class CheckVideoLength(BaseTransform):
    """Treat videos with fewer than ``min_frames`` frames as unreadable.

    By default MMAction2's ``SampleFrames`` loops over the frames of a video
    shorter than the clip. Put this transform right after the ``*Init``
    transform (it needs ``total_frames``) to raise :class:`VideoReadError`
    instead, which :class:`SkipBadVideosDataset` then skips.

    Required keys: ``total_frames``, ``filename``.

    Args:
        min_frames (int): The fewest frames a usable video has (>= 1).
    """

    def __init__(self, min_frames: int) -> None:
        if (not isinstance(min_frames, (int, np.integer))
                or isinstance(min_frames, bool) or min_frames < 1):
            raise ValueError('CheckVideoLength: min_frames must be an int '
                             f'>= 1, got {min_frames!r}.')
        self.min_frames = int(min_frames)

    def transform(self, results: dict) -> dict:
        """Raise VideoReadError if the video is too short."""
        if 'total_frames' not in results:
            raise KeyError('CheckVideoLength needs total_frames: put it '
                           'after DecordInit/PyAVInit/OpenCVInit.')
        total = results['total_frames']
        if total < self.min_frames:
            raise VideoReadError(
                str(results.get('filename', '<no filename>')),
                f'the video has {total} frames, fewer than min_frames='
                f'{self.min_frames}', type(self).__name__)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(min_frames={self.min_frames})'


# Per-process skip counters (index 0: the main process, 1 + i: DataLoader
# worker i); each slot has a single writer, so no lock is needed.
_COUNTER_SLOTS = 257
# Substitutes tried for one sample before giving up.
_MAX_ATTEMPTS = 100


@DATASETS.register_module()
class SkipBadVideosDataset:
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
        if (isinstance(max_bad_ratio, bool)
                or not isinstance(max_bad_ratio, (int, float))
                or not 0.0 <= max_bad_ratio <= 1.0):
            raise ValueError('SkipBadVideosDataset: max_bad_ratio must be a '
                             f'number in [0, 1], got {max_bad_ratio!r}.')
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        elif not hasattr(dataset, '__getitem__'):
            raise TypeError('SkipBadVideosDataset: dataset must be a data set '
                            'or its config dict, got '
                            f'{type(dataset).__name__}.')
        if getattr(dataset, 'test_mode', False):
            raise ValueError(
                'SkipBadVideosDataset wraps training data only, got a data '
                'set with test_mode=True: evaluating on substitutes would '
                'bias the metric. Remove or fix the files the error names.')
        self.dataset = dataset
        self.max_bad_ratio = float(max_bad_ratio)
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped data set's meta information."""
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        """Initialise the wrapped data set and the shared counters."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        n = len(self.dataset)
        self._bad = torch.zeros(n, dtype=torch.uint8).share_memory_()
        self._skips = torch.zeros(_COUNTER_SLOTS,
                                  dtype=torch.int64).share_memory_()
        self._fully_initialized = True

    def get_data_info(self, idx: int) -> dict:
        """The wrapped data set's annotation of sample ``idx``."""
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)

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


install_video_guards()
