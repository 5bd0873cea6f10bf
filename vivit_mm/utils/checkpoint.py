"""Safe checkpoint reading: ``torch.load(weights_only=True)`` plus an explicit
allow-list of the few types that mmengine's Runner writes, never a pickle that
can run code.

What an mmengine 0.10.7 checkpoint holds besides tensors and plain Python
data:

* ``mmengine.logging.HistoryBuffer`` objects (the message hub's log scalars).
  mmengine pickles them with their ``_statistics_methods`` dict, i.e. method
  objects rebuilt through ``builtins.getattr``. Allow-listing ``getattr`` would
  let a crafted file reach any attribute of any allowed object (for example
  ``getattr(numpy_array, 'tofile')`` writes files), so instead
  :func:`register_safe_globals` gives ``HistoryBuffer`` a ``__reduce__`` that
  pickles plain lists and an int, rebuilt through its own constructor.
* numpy scalars (``eta``, ``best_score`` in the runtime info), pickled as
  ``numpy._core.multiarray.scalar(dtype, bytes)``. Only that function, the
  ``numpy.dtype`` class and the numeric dtype classes are allowed; object
  arrays, ``ndarray`` and ``_reconstruct`` are not.

Everything is installed on ``import vivit_mm``: :func:`register_safe_globals`
and a replacement of mmengine's loader for local files, so ``load_from``,
``resume``, ``tools/test.py`` and ``mmaction.apis.init_recognizer`` all read
with ``weights_only=True`` and refuse anything else with a message that says
why and how to convert a trusted legacy file.
"""
import os
from typing import Any, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

# numpy scalar types a Runner checkpoint may contain (metrics, eta).
_NUMPY_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64,
                       np.uint8, np.uint16, np.uint32, np.uint64,
                       np.float16, np.float32, np.float64)

CONVERT_HINT = (
    'If you trust this file (e.g. you saved it yourself with mmengine before '
    'installing vivit_mm), convert it once with '
    '`python tools/misc/convert_legacy_checkpoint.py IN OUT --trust-source`; '
    'the converted file loads safely.')


def _history_buffer_reduce(self: HistoryBuffer) -> tuple:
    """Pickle a ``HistoryBuffer`` as ``HistoryBuffer(logs, counts, max_len)``
    with plain Python lists, so loading it needs no other global."""
    return (HistoryBuffer, (self._log_history.tolist(),
                            self._count_history.tolist(),
                            int(self.max_length)))


def _history_buffer_setstate(self: HistoryBuffer, state: dict) -> None:
    """Restore a legacy (mmengine-format) pickled ``HistoryBuffer``.

    Only callable statistics methods are kept (a weights-only load can never
    produce one; a trusted ``weights_only=False`` load of an old file can).
    """
    state = dict(state)
    methods = state.pop('statistics_methods', {}) or {}
    self.__dict__.update(state)
    self._set_default_statistics()
    for name, method in dict(methods).items():
        if callable(method):
            self._statistics_methods.setdefault(name, method)


def _numpy_scalar_globals() -> list:
    """``numpy.*.multiarray.scalar`` under the names numpy 1.x and 2.x
    pickle it with, ``numpy.dtype`` and the numeric dtype classes."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    entries = [(multiarray.scalar, 'numpy.core.multiarray.scalar'),
               (multiarray.scalar, 'numpy._core.multiarray.scalar'),
               np.dtype]
    entries += [type(np.dtype(t)) for t in _NUMPY_SCALAR_TYPES]
    return entries


def safe_globals() -> list:
    """The exact allow-list added to ``torch.serialization``: mmengine's
    ``HistoryBuffer`` and numpy scalars of numeric dtypes."""
    return [HistoryBuffer] + _numpy_scalar_globals()


def register_safe_globals() -> None:
    """Make Runner checkpoints loadable with ``weights_only=True``.

    Patches ``HistoryBuffer`` pickling (see the module docstring), adds
    :func:`safe_globals` to ``torch.serialization`` and replaces mmengine's
    loader for local paths by :func:`load_from_local_safely`. Idempotent.
    """
    HistoryBuffer.__reduce__ = _history_buffer_reduce
    HistoryBuffer.__setstate__ = _history_buffer_setstate
    torch.serialization.add_safe_globals(safe_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)


def _unsafe_globals(src: Any) -> tuple:
    """Globals a checkpoint names (read from the pickle opcodes; nothing in
    the file is executed): ``(all of them, those beyond the allow-list)``."""
    try:
        if not isinstance(src, (str, os.PathLike)):
            src.seek(0)
        found = torch.serialization.get_unsafe_globals_in_checkpoint(src)
    except Exception:  # not a zip checkpoint: no list, the message stays
        return set(), []
    allowed = set()
    for entry in torch.serialization.get_safe_globals():
        if isinstance(entry, tuple):
            allowed.add(entry[1])
        else:
            allowed.add(f'{entry.__module__}.{entry.__qualname__}')
    return set(found), sorted(set(found) - allowed)


def safe_load(src: Union[str, os.PathLike, Any],
              map_location: Union[str, torch.device, None] = 'cpu') -> Any:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        src (str | PathLike | file): Checkpoint path or open binary file.
        map_location: Where to put tensors. Defaults to ``'cpu'``.

    Raises:
        FileNotFoundError: ``src`` is a path that does not exist.
        ValueError: The file holds objects that a weights-only load refuses
            (it could run code); the message names them and how to convert
            a trusted legacy file.
    """
    if isinstance(src, (str, os.PathLike)):
        src = os.path.expanduser(os.fspath(src))
        if not os.path.isfile(src):
            raise FileNotFoundError(f'Checkpoint {src!r} does not exist.')
    try:
        return torch.load(src, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError with the globals
        if 'weights_only' not in str(e) and 'Unsupported global' not in str(e):
            raise
        found, names = _unsafe_globals(src)
        what = (f'it needs {", ".join(names)}, which are not on the '
                f'allow-list' if names else 'it holds objects outside the '
                'weights-only allow-list')
        legacy = ('builtins.getattr' in found
                  and 'mmengine.logging.history_buffer.HistoryBuffer' in found)
        raise ValueError(
            f'Refusing to load checkpoint {src!r}: {what}. Unpickling such '
            f'objects can run arbitrary code, so vivit_mm never loads them '
            f'(torch.load weights_only=True). '
            + ('This looks like a checkpoint saved by mmengine without '
               'vivit_mm (its HistoryBuffer pickles methods through '
               'builtins.getattr). ' if legacy else '')
            + CONVERT_HINT + f' Details from torch: {e}') from e


def load_from_local_safely(filename: str, map_location=None) -> Any:
    """mmengine ``CheckpointLoader`` scheme for local paths (``load_from``,
    ``resume``, ``load_checkpoint``, ``init_recognizer``): :func:`safe_load`.
    """
    return safe_load(filename, map_location=map_location)


def plain_checkpoint(obj: Any) -> Any:
    """Copy of a checkpoint with numpy arrays and scalars turned into Python
    lists and numbers (tensors, ``HistoryBuffer`` and everything else kept),
    so that it loads with :func:`safe_load` once saved under vivit_mm."""
    if isinstance(obj, torch.Tensor) or isinstance(obj, HistoryBuffer):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        out = obj.copy()  # keeps OrderedDict and its order
        for k, v in obj.items():
            out[k] = plain_checkpoint(v)
        return out
    if isinstance(obj, (list, tuple)):
        items = [plain_checkpoint(v) for v in obj]
        return type(obj)(items) if type(obj) in (list, tuple) else obj
    return obj
