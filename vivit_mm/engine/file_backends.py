"""``atomic_local``: mmengine's local file backend with all-or-nothing
writes, registered in mmengine's file backend registry.

A file written through it is complete under its name at every moment: the
bytes go to ``<name>.tmp``, are flushed to disk, and the temporary file is
renamed to ``<name>`` (atomic on POSIX file systems). A process killed while
writing leaves at most a stale ``.tmp`` file. ``CheckpointHook`` and
``Runner.save_checkpoint`` use it through ``backend_args=dict(backend=
'atomic_local')``; :class:`~vivit_mm.engine.AtomicCheckpointHook` sets that.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

TMP_SUFFIX = '.tmp'


def atomic_write(data: bytes, path: Union[str, Path]) -> None:
    """Write ``data`` to ``path`` through a temporary file, ``fsync`` and a
    rename, so that ``path`` holds either its old content or all of
    ``data``."""
    path = os.fspath(path)
    folder = osp.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    tmp = path + TMP_SUFFIX
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put``/``put_text`` write atomically (see the
    module docstring); reading and everything else are ``LocalBackend``'s."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


__all__ = ['AtomicLocalBackend', 'atomic_write', 'TMP_SUFFIX']
