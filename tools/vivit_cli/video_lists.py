"""A folder of class sub-folders of videos -> MMAction2 video lists, the
class names and a fine-tuning config (``tools/data/build_video_lists.py``).

The folder layout is torchvision's and HuggingFace's "video folder"::

    VIDEO_DIR/<class name>/<any sub-folders>/<video file>

Classes are the sorted sub-folder names; a class's label is its index. Files
that are not videos by their extension, hidden files and hidden folders are
ignored. Every video is opened with the project's reader (decord through
MMAction2's ``DecordInit``/``DecordDecode`` inside ``VideoReadGuard``) and
its first and last frame decoded, which catches empty, truncated, damaged
and frameless files; they are left out, with the reason.
"""
import math
import os
import os.path as osp
import random
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

#: File name extensions read as videos (lower case).
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.mpg',
                    '.mpeg', '.wmv', '.flv', '.3gp', '.ogv', '.ts')
SPLITS = ('train', 'val', 'test')
LAYOUT_HINT = ('Put each class\'s videos in a sub-folder named after the '
               'class: VIDEO_DIR/<class>/<video>.mp4.')


class Video(NamedTuple):
    """A video file: its path relative to the data root and its class."""
    path: str  # relative to VIDEO_DIR, '/'-separated
    label: int


def _hidden(name: str) -> bool:
    return name.startswith('.')


def find_classes(video_dir: str) -> List[str]:
    """The sorted class folder names of ``video_dir``.

    Raises:
        ValueError: ``video_dir`` is not a folder, has no class folders, or
            a class folder's name holds whitespace (MMAction2's lists
            separate the path from the label by a space).
    """
    if not osp.isdir(video_dir):
        raise ValueError(f'{video_dir!r} is not a folder. {LAYOUT_HINT}')
    classes = sorted(e.name for e in os.scandir(video_dir)
                     if e.is_dir() and not _hidden(e.name))
    if not classes:
        raise ValueError(f'{video_dir!r} has no class folders. '
                         f'{LAYOUT_HINT}')
    spaced = [c for c in classes if any(ch.isspace() for ch in c)]
    if spaced:
        raise ValueError(
            f'Class folder names with whitespace: {spaced}. MMAction2\'s '
            'lists separate the path from the label by a space; rename the '
            'folders (e.g. "playing guitar" -> "playing_guitar").')
    return classes


def find_videos(video_dir: str, classes: Sequence[str]
                ) -> Tuple[Dict[str, List[str]], List[Tuple[str, str]]]:
    """The video files of every class, sorted by path.

    Returns:
        tuple: ``{class: [relative path, ...]}`` and ``[(relative path,
        reason), ...]`` for video files whose path holds whitespace (they
        cannot be listed). Non-video and hidden files are not returned.
    """
    found, refused = {}, []
    for name in classes:
        paths = []
        for root, dirs, files in os.walk(osp.join(video_dir, name),
                                         followlinks=True):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for f in files:
                if _hidden(f) or not f.lower().endswith(VIDEO_EXTENSIONS):
                    continue
                rel = osp.relpath(osp.join(root, f), video_dir)
                rel = rel.replace(os.sep, '/')
                if any(ch.isspace() for ch in rel):
                    refused.append((rel, 'its path holds whitespace, which '
                                    'MMAction2\'s list format cannot hold; '
                                    'rename it'))
                else:
                    paths.append(rel)
        found[name] = sorted(paths)
    return found, refused


#: A video whose frames end before this share of the duration its file
#: states is reported as truncated.
COVERED = 0.9


def stated_seconds(path: str) -> Optional[float]:
    """How long the file says its video lasts (read with PyAV): the video
    stream's own duration, else the container's when the video is its only
    stream (an audio track may outlast the video). None without PyAV or a
    stated duration."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(path) as container:
            video = container.streams.video[0]
            if video.duration and video.time_base:
                return float(video.duration * video.time_base)
            if len(container.streams) == 1 and container.duration:
                return container.duration / 1e6  # in av.time_base units
    except Exception:  # decord read it; PyAV's opinion is only a hint
        return None
    return None


def _end_seconds(results: dict, total: int) -> Optional[float]:
    """When the last of ``total`` frames ends: its timestamp, or, where the
    container has no usable timestamps (AVI gives none, decord then returns
    a nonsense value), the frame count over the average frame rate."""
    try:
        end = float(results['video_reader'].get_frame_timestamp(
            total - 1)[1])
    except Exception:
        end = None
    if end is None or not math.isfinite(end) or end <= 0:
        fps = results.get('avg_fps')
        end = total / fps if fps else None
    return end


def probe_video(path: str) -> Optional[str]:
    """None if ``path`` is a readable video, else the reason in words.

    Opens it with decord through MMAction2's transforms (in
    ``VideoReadGuard``, whose reasons this returns) and decodes the first
    and the last frame: a cut mp4 has no index or fails there. A cut WebM
    or Matroska file still reads, with fewer frames: when its frames end
    before ``COVERED`` of the duration the file states
    (:func:`stated_seconds`), it is reported as truncated.
    """
    import numpy as np
    from mmengine.dataset import Compose

    from vivit_mm.datasets.video_errors import VideoReadError
    results = dict(filename=path, start_index=0, modality='RGB')
    try:
        results = Compose([dict(type='VideoReadGuard', transforms=[
            dict(type='DecordInit', num_threads=1)])])(results)
        total = results['total_frames']
        if total < 1:
            return f'the video has no frames (total_frames={total})'
        end = _end_seconds(results, total)
        results['frame_inds'] = np.array(sorted({0, total - 1}))
        Compose([dict(type='VideoReadGuard',
                      transforms=[dict(type='DecordDecode')])])(results)
    except VideoReadError as err:
        return err.reason or str(err)
    stated = stated_seconds(path) if end is not None else None
    if stated and end < COVERED * stated:
        return (f'its {total} frames end at {end:.2f} s, but the file says '
                f'the video lasts {stated:.2f} s: it is probably truncated')
    return None


def probe_all(video_dir: str, videos: Dict[str, List[str]], log=print
              ) -> Tuple[Dict[str, List[str]], List[Tuple[str, str]]]:
    """Probe every video; returns the readable ones per class and
    ``[(relative path, reason), ...]`` for the others."""
    import logging

    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    import vivit_mm  # noqa: F401  (registers VideoReadGuard)
    # DecordInit's file client warns of its own deprecation per video.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _probe_each(video_dir, videos, log)
    finally:
        logger.setLevel(level)


def _probe_each(video_dir, videos, log):
    good, bad = {}, []
    total = sum(len(v) for v in videos.values())
    done = 0
    for name, paths in videos.items():
        good[name] = []
        for rel in paths:
            reason = probe_video(osp.join(video_dir, rel))
            if reason is None:
                good[name].append(rel)
            else:
                bad.append((rel, reason))
            done += 1
            if total >= 500 and done % 500 == 0:
                log(f'probed {done}/{total} videos')
    return good, bad


def split_counts(n: int, fractions: Sequence[float]) -> List[int]:
    """How many of ``n`` videos go to each split after train: rounded
    shares, at least 1 for a split with a positive fraction."""
    return [max(1, round(n * f)) if f > 0 else 0 for f in fractions]


def split_class(paths: Sequence[str], name: str, seed: int,
                fractions: Sequence[float]) -> List[List[str]]:
    """Split one class's videos into ``[train, val, test]``.

    The order is a shuffle seeded by ``(seed, class name)`` alone, so the
    split of a class does not change when other classes change.

    Raises:
        ValueError: too few videos for one in every split.
    """
    counts = split_counts(len(paths), fractions)
    needed = 1 + sum(1 for f in fractions if f > 0)
    if len(paths) < needed or sum(counts) >= len(paths):
        shares = ', '.join(f'{s} {f:g}' for s, f in zip(SPLITS[1:],
                                                        fractions) if f > 0)
        raise ValueError(
            f'Class {name!r} has {len(paths)} readable video(s): too few for '
            f'one in train and in each held-out split ({shares}); it needs '
            f'at least {needed}, and the held-out shares must leave some for '
            'training. Add videos to the class, lower --val-fraction / '
            '--test-fraction, or remove the class folder.')
    order = sorted(paths)
    random.Random(f'{seed}:{name}').shuffle(order)
    out, start = [], 0
    for count in counts:
        out.append(sorted(order[start:start + count]))
        start += count
    return [sorted(order[start:])] + out


def split_all(videos: Dict[str, List[str]], classes: Sequence[str],
              seed: int, val_fraction: float, test_fraction: float
              ) -> Dict[str, List[Video]]:
    """``{split: [Video, ...]}`` for every split (``test`` empty unless
    ``test_fraction > 0``).

    Raises:
        ValueError: a class without readable videos, or too few of them.
    """
    empty = [c for c in classes if not videos.get(c)]
    if empty:
        raise ValueError(
            f'Class folder(s) without readable videos: {empty}. Add videos '
            'to them or remove the folders (the labels are the sorted '
            'folder names, so every folder is a class).')
    out = {s: [] for s in SPLITS}
    for label, name in enumerate(classes):
        parts = split_class(videos[name], name, seed,
                            (val_fraction, test_fraction))
        for split, paths in zip(SPLITS, parts):
            out[split].extend(Video(p, label) for p in paths)
    return out


def count_table(splits: Dict[str, List[Video]], classes: Sequence[str],
                left_out: Dict[str, int]) -> str:
    """The count of videos per class and split, as a text table."""
    used = [s for s in SPLITS if splits[s] or s != 'test']
    head = ['class'] + list(used) + ['left out']
    rows = []
    for label, name in enumerate(classes):
        rows.append([name] + [str(sum(v.label == label for v in splits[s]))
                              for s in used] + [str(left_out.get(name, 0))])
    rows.append(['total'] + [str(len(splits[s])) for s in used]
                + [str(sum(left_out.values()))])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: '  '.join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(r, widths)))
    return '\n'.join([fmt(head)] + [fmt(r) for r in rows])


def write_lists(out_dir: str, splits: Dict[str, List[Video]],
                classes: Sequence[str]) -> List[str]:
    """Write ``classes.txt`` and ``<split>.txt`` (``path label`` lines);
    returns the files written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    files = {'classes.txt': list(classes)}
    for s in SPLITS:
        if splits[s] or s != 'test':
            files[f'{s}.txt'] = [f'{v.path} {v.label}' for v in splits[s]]
    for name, lines in files.items():
        path = osp.join(out_dir, name)
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(tmp, path)
        written.append(path)
    return written
