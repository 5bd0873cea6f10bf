"""Bulk jobs that keep their work: one result per video, written as it comes.

A job over a list of videos (``tools/misc/extract_features.py``) keeps its
finished results in ``OUT.parts/`` beside its output ``OUT``:

* ``job.json``: what the job is (config, checkpoint, options, the list's
  names); ``--resume`` refuses a folder made by another job;
* ``NNNNNNNN.npy``: the result of video ``NNNNNNNN`` of the list, written to
  a temporary file, flushed to disk and renamed;
* ``log.jsonl``: one line per finished video, appended (and flushed to
  disk) after its result: ``{"index", "name", "status": "ok"|"skipped",
  "reason"}``. A line cut by a kill is ignored.

A stopped or killed job therefore loses at most the video in flight;
``--resume`` continues after the last logged video and the final output is
the one an uninterrupted run writes. When every video is done the output is
assembled from the parts (streamed from disk: memory stays bounded on long
lists) and the folder is removed.
"""
import hashlib
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine.file_backends import atomic_write

#: Exit status of a job that completed but skipped videos.
EXIT_SKIPPED = 3


class BadVideoStop(RuntimeError):
    """An unreadable video stopped the job (finished work is kept)."""


def append_json_line(path: str, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path``, flushed to disk."""
    with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(record) + '\n')
        f.flush()
        os.fsync(f.fileno())


def read_json_lines(path: str) -> List[dict]:
    """The records :func:`append_json_line` wrote to ``path`` (none when it
    does not exist), up to a line cut by a kill."""
    if not os.path.isfile(path):
        return []
    records = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # the line a kill cut
                break
    return records


def job_identity(**fields) -> dict:
    """``fields`` as JSON types; a ``videos`` list is stored as its count
    and a SHA-256 of its names."""
    out = json.loads(json.dumps(fields, default=str, sort_keys=True))
    videos = out.pop('videos', None)
    if videos is not None:
        out['num_videos'] = len(videos)
        out['videos_sha256'] = hashlib.sha256(
            '\n'.join(map(str, videos)).encode()).hexdigest()
    return out


class PartsStore:
    """The ``OUT.parts/`` folder of a job (see the module docstring).

    Args:
        out (str): The job's final output file.
        job (dict): :func:`job_identity` of the job.
        resume (bool): Continue the job a folder holds; without it an
            existing folder is an error (its work is never overwritten).
    """

    def __init__(self, out: str, job: dict, resume: bool = False) -> None:
        self.out = out
        self.dir = out + '.parts'
        self.log = os.path.join(self.dir, 'log.jsonl')
        job_file = os.path.join(self.dir, 'job.json')
        if os.path.isdir(self.dir):
            records = read_json_lines(self.log)
            if not resume:
                raise FileExistsError(
                    f'{self.dir} holds {len(records)} finished video(s) of '
                    'an earlier run: add --resume to continue it, or delete '
                    'the folder to start again.')
            with open(job_file, encoding='utf-8') as f:
                old = json.load(f)
            changed = sorted(k for k in set(old) | set(job)
                             if old.get(k) != job.get(k))
            if changed:
                raise ValueError(
                    f'{self.dir} was made by another job (it differs in '
                    f'{", ".join(changed)}); --resume continues the same '
                    'job only. Delete the folder to start again.')
        else:
            os.makedirs(self.dir)
            atomic_write(json.dumps(job, indent=1).encode(), job_file)
        self.records: Dict[int, dict] = {r['index']: r
                                         for r in read_json_lines(self.log)}

    def _part(self, index: int) -> str:
        return os.path.join(self.dir, f'{index:08d}.npy')

    def add(self, index: int, name: str, result: Optional[np.ndarray] = None,
            reason: Optional[str] = None) -> None:
        """Record video ``index``: its ``result``, or why it was skipped."""
        if result is not None:
            buffer = io.BytesIO()
            np.save(buffer, result)
            atomic_write(buffer.getbuffer(), self._part(index))
        record = dict(index=index, name=name,
                      status='ok' if result is not None else 'skipped',
                      reason=reason)
        append_json_line(self.log, record)
        self.records[index] = record

    def skipped(self) -> List[dict]:
        return [r for _, r in sorted(self.records.items())
                if r['status'] == 'skipped']

    def assemble(self) -> Tuple[tuple, int]:
        """Write the output from the parts (``.npz``: ``features``,
        ``names``, ``skipped``, ``skipped_reasons``; ``.npy``: the one
        result), then remove the folder. Returns the features' shape and
        the number of videos skipped."""
        ok = [r for _, r in sorted(self.records.items())
              if r['status'] == 'ok']
        skipped = self.skipped()
        folder = os.path.dirname(os.path.abspath(self.out))
        os.makedirs(folder, exist_ok=True)
        shape: tuple = (0, )
        if self.out.endswith('.npy'):
            if len(ok) == 1:
                shutil.copyfile(self._part(ok[0]['index']), self.out)
                shape = (1, ) + np.load(self.out, mmap_mode='r').shape
        else:
            stack = None
            if ok:
                first = np.load(self._part(ok[0]['index']), mmap_mode='r')
                shape = (len(ok), ) + first.shape
                stack = np.lib.format.open_memmap(
                    os.path.join(self.dir, 'features.npy'), mode='w+',
                    dtype=first.dtype, shape=shape)
                for i, r in enumerate(ok):
                    stack[i] = np.load(self._part(r['index']))
                stack.flush()
            tmp = self.out + '.tmp.npz'
            np.savez(tmp, features=stack if stack is not None
                     else np.zeros((0, ), np.float32),
                     names=np.array([r['name'] for r in ok], dtype=str),
                     skipped=np.array([r['name'] for r in skipped],
                                      dtype=str),
                     skipped_reasons=np.array(
                         [r['reason'] or '' for r in skipped], dtype=str))
            del stack
            os.replace(tmp, self.out)
        shutil.rmtree(self.dir)
        return shape, len(skipped)


class Progress:
    """``k/N``, rate and time left: a rich progress bar on a terminal,
    else a plain line at most every ``every_s`` seconds (and at the end)."""

    def __init__(self, total: int, done: int = 0, what: str = 'videos',
                 every_s: float = 10.0, file=None) -> None:
        self.total, self.done, self.what = total, done, what
        self.file = file or sys.stderr
        self.every_s, self.start = every_s, time.monotonic()
        self.new, self.last = 0, 0.0
        self.bar = None
        if getattr(self.file, 'isatty', lambda: False)():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn,
                                       ProgressColumn, TextColumn,
                                       TimeRemainingColumn)
            from rich.progress import Progress as RichProgress
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):
                    return Text(f'{task.speed:.2f} {what}/s' if task.speed
                                else f'? {what}/s')

            self.bar = RichProgress(
                TextColumn(what), BarColumn(), MofNCompleteColumn(), Rate(),
                TimeRemainingColumn(), console=Console(file=self.file))
            self.task = self.bar.add_task(what, total=total, completed=done)
            self.bar.start()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.new / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float('nan')
        eta = (time.strftime('%H:%M:%S', time.gmtime(left))
               if left == left else '?')
        return (f'{self.done}/{self.total} {self.what}, {rate:.2f} '
                f'{self.what}/s, about {eta} left')

    def update(self) -> None:
        self.done += 1
        self.new += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            print(self.line(), file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class Summary:
    """What a bulk job did."""
    total: int
    resumed: int = 0
    computed: int = 0
    skipped: List[dict] = field(default_factory=list)


def run_videos(videos: Sequence[Tuple[str, str]],
               compute: Callable[[str], np.ndarray], store: PartsStore,
               skip_bad: bool = False,
               bad_errors: Tuple[type, ...] = (FileNotFoundError, ),
               progress: Optional[Progress] = None) -> Summary:
    """Compute every ``(path, name)`` video not yet in ``store``, recording
    each result as it comes.

    An error of ``bad_errors`` (an unreadable video) stops the job with
    :class:`BadVideoStop` naming the file, the finished work kept; with
    ``skip_bad`` the video is recorded as skipped with the reason instead.
    """
    summary = Summary(total=len(videos), resumed=len(store.records))
    try:
        for index, (path, name) in enumerate(videos):
            if index in store.records:
                continue
            try:
                if not os.path.exists(path):
                    raise FileNotFoundError(
                        f'Video {path!r} does not exist.')
                result = compute(path)
            except bad_errors as e:
                if not skip_bad:
                    raise BadVideoStop(
                        f'{e} The {len(store.records)} finished video(s) '
                        f'are kept in {store.dir}: fix or remove the video, '
                        'then rerun with --resume (or add '
                        '--skip-bad-videos to record it as skipped).'
                    ) from None
                store.add(index, name, reason=str(e))
            else:
                store.add(index, name, result)
                summary.computed += 1
            if progress is not None:
                progress.update()
    finally:
        if progress is not None:
            progress.close()
    summary.skipped = store.skipped()
    return summary


__all__ = ['PartsStore', 'Progress', 'Summary', 'run_videos', 'job_identity',
           'BadVideoStop', 'EXIT_SKIPPED']
