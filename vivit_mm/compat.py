"""Everything vivit_mm does to its host libraries, in one place.

``import vivit_mm`` registers modules into MMAction2's and mmengine's
registries and, besides that, does exactly one thing to a host library
(README, "Compatibility"):

* :func:`register_safe_globals` adds data-only types to
  ``torch.serialization``'s weights-only allow-list
  (``torch.serialization.add_safe_globals``), so that checkpoints the Runner
  saved load with ``torch.load(weights_only=True)`` (torch's default since
  2.6) in ``load_from``, ``resume``, ``tools/test.py`` and
  ``mmaction.apis.init_recognizer``: mmengine's ``HistoryBuffer`` (the log
  scalars of the message hub), :class:`PlainHistoryBuffer` (the same, as the
  :class:`~vivit_mm.engine.WeightsOnlyCheckpointHook` saves it) and numpy
  scalars of numeric dtypes (``eta``, ``best_score``).

Why that is safe: mmengine pickles a ``HistoryBuffer`` with its statistics
methods, which are rebuilt through ``builtins.getattr``; that stays refused
(allowing ``getattr`` would let a file reach any attribute of any allowed
object, e.g. ``numpy.ndarray.tofile``). A ``PlainHistoryBuffer`` pickles as
its constructor called with plain lists, which needs nothing else. numpy
arrays, object dtypes and ``_reconstruct`` are not allowed.

The host versions this was written and tested for are checked on import
(:func:`check_host_versions`); other versions fail with a message that says
which to install, rather than loading checkpoints differently.
"""
from typing import Any, List

import mmengine
import numpy as np
import torch
from mmengine.logging import HistoryBuffer

#: The host versions this module was written for: ``(package, minimum,
#: first unsupported)``; ``None`` for no upper bound.
HOST_VERSIONS = (
    # torch: weights_only=True is the default of torch.load from 2.6 on.
    ('torch', '2.6', None),
    # mmengine: HistoryBuffer's fields, MessageHub.state_dict, the Runner's
    # checkpoint hook stages and CheckpointHook's arguments of 0.10.x.
    ('mmengine', '0.10.0', '0.11.0'),
)

# numpy scalar types a Runner checkpoint may contain (metrics, eta).
_NUMPY_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64,
                       np.uint8, np.uint16, np.uint32, np.uint64,
                       np.float16, np.float32, np.float64)


def _version(text: str) -> tuple:
    """``'2.14.1+cu130'`` -> ``(2, 14, 1)``."""
    parts = []
    for piece in text.split('+')[0].split('.'):
        digits = ''.join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_host_versions(found: dict = None) -> None:
    """Raise ``ImportError`` unless torch and mmengine are versions this
    module was written for (:data:`HOST_VERSIONS`).

    Args:
        found (dict, optional): ``{package: version}`` to check instead of
            the installed ones (for tests).
    """
    found = found or dict(torch=torch.__version__,
                          mmengine=mmengine.__version__)
    for package, low, high in HOST_VERSIONS:
        have = _version(found[package])
        if have < _version(low) or (high and have >= _version(high)):
            allowed = f'>= {low}' + (f', < {high}' if high else '')
            raise ImportError(
                f'vivit_mm needs {package} {allowed} (it adapts how '
                f'{package} checkpoints are loaded, see vivit_mm/compat.py), '
                f'but {package} {found[package]} is installed. Install the '
                'tested versions: `pip install torch==2.14.1 '
                'torchvision==0.29.1 mmengine==0.10.7` (or run '
                'tools/setup_env.sh).')


class PlainHistoryBuffer(HistoryBuffer):
    """A ``HistoryBuffer`` that pickles as
    ``PlainHistoryBuffer(log_history, count_history, max_length)`` with
    plain Python lists, so that a weights-only load needs only this class.

    It behaves exactly as ``HistoryBuffer`` (the message hub accepts it
    anywhere); custom statistics methods registered on a buffer are not
    pickled.
    """

    def __reduce__(self) -> tuple:
        return (PlainHistoryBuffer, (self._log_history.tolist(),
                                     self._count_history.tolist(),
                                     int(self.max_length)))

    @classmethod
    def of(cls, buffer: HistoryBuffer) -> 'PlainHistoryBuffer':
        """A copy of ``buffer`` (its history and ``max_length``)."""
        return cls(buffer._log_history.tolist(),
                   buffer._count_history.tolist(), int(buffer.max_length))


def to_weights_only(obj: Any) -> Any:
    """A copy of ``obj`` (a checkpoint or part of one) that a weights-only
    load reads with :func:`safe_globals`: every ``HistoryBuffer`` becomes a
    :class:`PlainHistoryBuffer`, numpy arrays become lists and numpy
    scalars Python numbers; tensors and everything else are kept (dicts keep
    their type and order)."""
    if isinstance(obj, torch.Tensor) or isinstance(obj, PlainHistoryBuffer):
        return obj
    if isinstance(obj, HistoryBuffer):
        return PlainHistoryBuffer.of(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        out = obj.copy()  # keeps OrderedDict and its order
        for k, v in obj.items():
            out[k] = to_weights_only(v)
        return out
    if type(obj) in (list, tuple):
        return type(obj)(to_weights_only(v) for v in obj)
    return obj


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


def safe_globals() -> List:
    """The exact entries :func:`register_safe_globals` adds to torch's
    weights-only allow-list."""
    return [HistoryBuffer, PlainHistoryBuffer] + _numpy_scalar_globals()


def register_safe_globals() -> None:
    """Add :func:`safe_globals` to ``torch.serialization``'s allow-list
    (idempotent: torch keeps a set)."""
    torch.serialization.add_safe_globals(safe_globals())


__all__ = ['check_host_versions', 'PlainHistoryBuffer', 'to_weights_only',
           'safe_globals', 'register_safe_globals', 'HOST_VERSIONS']
