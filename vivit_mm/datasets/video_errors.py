"""Unreadable videos: a clear error that names the file, or a documented
option that skips them.

MMAction2's video transforms fail on a missing, empty, truncated or
undecodable file with messages that do not say which file it was (decord
reads from an in-memory copy and reports e.g. ``Error reading 13767
bytes...``). Configs name :class:`VideoReadGuard` around the transforms that
open, sample and decode a video::

    dict(type='VideoReadGuard', transforms=[
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=32, frame_interval=2),
        dict(type='DecordDecode')])

Any failure inside it is re-raised as :class:`VideoReadError` naming the
file, the reason and the transform, and a video with no frames is rejected
before a frame sampler divides by zero. Good videos are processed exactly as
without it. The shipped configs and the converters' configs use it, so
training, ``Runner.test()`` and ``mmaction.apis.inference_recognizer`` all
report unreadable files by name.

A video shorter than the clip is not an error: ``SampleFrames`` loops over
its frames (MMAction2's behaviour). :class:`CheckVideoLength` after the
``*Init`` transform treats such videos as unreadable instead.
:class:`~vivit_mm.datasets.wrappers.SkipBadVideosDataset` skips unreadable
training videos.
"""
import os
import re
from typing import Any, Optional, Sequence, Union

from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ..utils import checks

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


@TRANSFORMS.register_module()
class VideoReadGuard(BaseTransform):
    """Run the transforms that open, sample and decode a video, and turn any
    failure among them into a :class:`VideoReadError` that names the file,
    the reason and the transform.

    A ``KeyError`` for a key the pipeline never provided is a configuration
    bug, not a bad file, and is raised as it is; so are ``ImportError`` and
    ``MemoryError``. A video whose ``total_frames`` is below 1 is rejected
    before the next transform (a frame sampler) runs.

    Args:
        transforms (Sequence[dict | callable]): The wrapped transforms,
            typically ``*Init``, a frame sampler and ``*Decode``.
    """

    def __init__(self, transforms: Sequence[Union[dict, Any]]) -> None:
        if not isinstance(transforms, (list, tuple)) or not transforms:
            raise ValueError('VideoReadGuard: transforms must be a non-empty '
                             f'list of transforms, got {transforms!r}.')
        self.transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                           for t in transforms]
        bad = [t for t in self.transforms if not callable(t)]
        if bad:
            raise TypeError(f'VideoReadGuard: {bad} are not transforms.')

    def transform(self, results: dict) -> Optional[dict]:
        """Apply the wrapped transforms in order."""
        for t in self.transforms:
            name = getattr(t, '__name__', type(t).__name__)
            filename = results.get('filename', '<no filename>')
            total = results.get('total_frames')
            if total is not None and total < 1:
                raise VideoReadError(
                    str(filename), f'the video has no frames (total_frames='
                    f'{total})', name)
            try:
                results = t(results)
            except (VideoReadError, ImportError, MemoryError):
                raise
            except KeyError as err:
                if err.args and err.args[0] not in results:
                    raise  # a key the pipeline did not provide: a config bug
                raise VideoReadError(str(filename), diagnose(filename, err),
                                     name) from err
            except Exception as err:
                raise VideoReadError(str(filename), diagnose(filename, err),
                                     name) from err
            if results is None:
                return None
        return results

    def __repr__(self) -> str:
        inner = ', '.join(repr(t) for t in self.transforms)
        return f'{self.__class__.__name__}(transforms=[{inner}])'


def iter_transforms(pipeline: Sequence[dict]):
    """Every transform config of a pipeline config, those inside wrappers
    such as :class:`VideoReadGuard` included, in order."""
    for t in pipeline:
        yield t
        inner = t.get('transforms') if isinstance(t, dict) else None
        if isinstance(inner, (list, tuple)):
            yield from iter_transforms(inner)


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
        self.min_frames = checks.positive_int(min_frames, 'min_frames',
                                              'CheckVideoLength')

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


__all__ = ['VideoReadError', 'VideoReadGuard', 'CheckVideoLength',
           'diagnose', 'iter_transforms']
