"""Checks that ``tools/train.py`` and ``tools/test.py`` run before the Runner
builds anything, so a wrong path fails in a second with a message that
names the option, instead of after the model and data are built.

* :func:`check_checkpoints`: every checkpoint the config references
  (``load_from``, ``resume``, ``ViViTInitHook``, ``init_cfg=Pretrained``)
  exists and is complete.
* :func:`find_resumable_checkpoint`: the newest *complete* checkpoint of a
  work directory (a file truncated by a kill is passed over).
"""
import glob
import logging
import os
import os.path as osp
import zipfile
from typing import Any, Iterator, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from vivit_mm.convert.io import disallowed_globals, refusal_message


def _is_local(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and '://' not in str(path)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None if it looks
    complete. Only the file's container is checked (a torch zip file must
    have its central directory, i.e. it was written to the end); nothing
    is unpickled."""
    if not osp.exists(path):
        return 'the file does not exist'
    if osp.isdir(path):
        return 'it is a directory'
    size = osp.getsize(path)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK'):  # torch's zip format (torch >= 1.6)
        try:
            with zipfile.ZipFile(path) as z:
                if not any(n.endswith('data.pkl') for n in z.namelist()):
                    return 'it is a zip file without a torch data.pkl'
        except zipfile.BadZipFile as e:
            return f'the file ({size} bytes) is truncated or damaged ({e})'
    return None


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from.

    First the file that ``work_dir/last_checkpoint`` names, then the other
    ``*.pth`` files of ``work_dir`` from the newest (``best_*`` excluded);
    incomplete files are passed over with a warning.

    Returns:
        str | None: The checkpoint, or None when there is none.
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            candidates.append(f.read().strip())
    others = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
              if not osp.basename(p).startswith('best_')]
    candidates += sorted(others, key=osp.getmtime, reverse=True)
    seen = set()
    for path in candidates:
        if not path or path in seen:
            continue
        seen.add(path)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print_log(f'Resume: passing over {path!r}: {problem}.',
                  logger='current', level=logging.WARNING)
    return None


def _walk(obj: Any, prefix: str) -> Iterator[Tuple[str, dict]]:
    """Every dict in a config tree with its dotted path."""
    if isinstance(obj, dict):
        yield prefix, obj
        for k, v in obj.items():
            yield from _walk(v, f'{prefix}.{k}' if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f'{prefix}[{i}]')


def check_checkpoint_file(option: str, path: Any, why: str = '') -> None:
    """Raise if the local checkpoint ``path`` (given as ``option``) is
    missing (FileNotFoundError), empty or truncated, or holds objects a
    weights-only load refuses (ValueError); remote paths are not checked.
    Nothing in the file is unpickled."""
    if not _is_local(path):
        return
    local = os.path.expanduser(os.fspath(path))
    problem = checkpoint_problem(local)
    if problem is not None:
        exc = FileNotFoundError if 'does not exist' in problem else ValueError
        raise exc(f'{option}={os.fspath(path)!r}: {problem}{why}. Fix the '
                  'path or remove the option; nothing has been trained.')
    if disallowed_globals(local):
        raise ValueError(f'{option}: {refusal_message(local)}')


def check_checkpoints(cfg: Config) -> None:
    """Fail now, before the Runner builds anything, if a checkpoint the
    config needs is missing or incomplete.

    Checked: every ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in
    the model (the Runner initialises the model before it loads), then
    ``load_from`` (also the checkpoint of ``resume=True``), and, when no
    weights will be restored (no ``load_from``, nothing to resume), the
    ``checkpoint`` of a ``ViViTInitHook``. URLs and other remote paths are
    not checked here.

    Raises:
        FileNotFoundError: A referenced checkpoint does not exist.
        ValueError: It exists but is empty or truncated.
    """
    for path, node in _walk(cfg.get('model', {}), 'model'):
        # The Runner initialises the model before load_from/resume.
        if node.get('type') == 'Pretrained' and 'checkpoint' in node:
            check_checkpoint_file(f'{path}.checkpoint', node['checkpoint'])
    load_from = cfg.get('load_from', None)
    resume = bool(cfg.get('resume', False))
    if load_from is not None:
        check_checkpoint_file(
            'load_from', load_from,
            ' (resume=True resumes from it)' if resume else '')
        return  # restored weights win over ViViTInitHook
    if resume and find_resumable_checkpoint(cfg.work_dir):
        return
    for i, hook in enumerate(cfg.get('custom_hooks', None) or []):
        if isinstance(hook, dict) and hook.get('type') == 'ViViTInitHook':
            check_checkpoint_file(
                f'custom_hooks[{i}].checkpoint', hook.get('checkpoint'),
                ' (ViViTInitHook initialises the model from it when training '
                'from scratch)')
