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
(:func:`check_host_versions`): torch, mmengine and MMAction2 (1.1.x from
PyPI or 1.2.x from source), and an installed mmcv (full or lite); other
stacks fail with a message that says what to install, rather than loading
checkpoints differently or failing deep inside MMAction2. Where MMAction2
1.1 and 1.2 name a data-sample field differently, :func:`pred_score_of`,
:func:`gt_label_of` and :func:`set_gt_label` read or write either.
"""
import importlib.util
import os
from importlib import metadata
from typing import Any, List, Optional

import mmengine
import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.utils import digit_version

#: The host versions this module was written for: ``(package, minimum,
#: first unsupported)``; ``None`` for no upper bound.
HOST_VERSIONS = (
    # torch: weights_only=True is the default of torch.load from 2.6 on.
    ('torch', '2.6', None),
    # mmengine: HistoryBuffer's fields, MessageHub.state_dict, the Runner's
    # checkpoint hook stages and CheckpointHook's arguments of 0.10.x.
    ('mmengine', '0.10.0', '0.11.0'),
    # mmaction2: 1.1.x (PyPI) and 1.2.x (from source); the data-sample
    # fields differ, see pred_score_of / gt_label_of.
    ('mmaction2', '1.1.0', '1.3.0'),
)

#: The tested stack, installed by tools/setup_env.sh
#: (requirements/constraints.txt).
TESTED_INSTALL = ('pip install torch==2.14.1 torchvision==0.29.1 '
                  'mmengine==0.10.7 mmcv-lite==2.0.1 mmaction2==1.1.0 '
                  'mmpretrain==1.2.0')

# numpy scalar types a Runner checkpoint may contain (metrics, eta).
_NUMPY_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64,
                       np.uint8, np.uint16, np.uint32, np.uint64,
                       np.float16, np.float32, np.float64)


def _installed(distribution: str) -> Optional[str]:
    """The installed version of ``distribution``, or None (read from the
    package metadata; nothing is imported)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _mmaction_dir() -> Optional[str]:
    """The folder of the ``mmaction`` package (not imported), or None."""
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def host_versions() -> dict:
    """The installed versions of the packages in :data:`HOST_VERSIONS`
    (``None`` where one is missing)."""
    return dict(torch=torch.__version__, mmengine=mmengine.__version__,
                mmaction2=_installed('mmaction2'))


def check_host_versions(found: Optional[dict] = None,
                        mmaction_dir: Optional[str] = None,
                        extras: Optional[dict] = None) -> None:
    """Raise ``ImportError`` with the fix unless the host stack is one this
    plugin was written for: torch, mmengine and MMAction2 in
    :data:`HOST_VERSIONS`, mmcv installed (the full ``mmcv`` or
    ``mmcv-lite``, whichever; no compiled op of mmcv is used), and an
    MMAction2 whose models import: not the PyPI wheel of 1.2.0 (it lacks
    ``mmaction/models/localizers/drn``), and for 1.2.x, whose multimodal
    models load whenever ``transformers`` is installed, a transformers
    below 4.56 together with timm.

    Args:
        found (dict, optional): ``{package: version}`` to check instead of
            the installed ones (tests); missing keys are read.
        mmaction_dir (str, optional): MMAction2's package folder to inspect
            instead of the installed one (tests).
        extras (dict, optional): the versions of ``mmcv``, ``mmcv-lite``,
            ``transformers`` and ``timm`` (None = not installed) instead of
            the installed ones (tests); missing keys are read.
    """
    found = {**host_versions(), **(found or {})}
    have = {name: _installed(name)
            for name in ('mmcv', 'mmcv-lite', 'transformers', 'timm')}
    have.update(extras or {})
    for package, low, high in HOST_VERSIONS:
        if found.get(package) is None:
            raise ImportError(
                f'vivit_mm needs {package}, which is not installed. Install '
                f'the tested versions: `{TESTED_INSTALL}` (or run '
                'tools/setup_env.sh).')
        version = digit_version(found[package])
        if version < digit_version(low) or (
                high and version >= digit_version(high)):
            allowed = f'>= {low}' + (f', < {high}' if high else '')
            raise ImportError(
                f'vivit_mm needs {package} {allowed}, but {package} '
                f'{found[package]} is installed. Install the tested '
                f'versions: `{TESTED_INSTALL}` (or run tools/setup_env.sh).')
    if have['mmcv'] is None and have['mmcv-lite'] is None:
        raise ImportError(
            'vivit_mm needs mmcv, which MMAction2 imports, and neither mmcv '
            'nor mmcv-lite is installed. Install one of them: `pip install '
            'mmcv-lite==2.0.1` (no compiled ops, which vivit_mm does not '
            'use) or the full mmcv as MMAction2\'s guide says (`mim install '
            '"mmcv>=2.0.1,<2.2.0"`).')
    if digit_version(found['mmaction2']) < digit_version('1.2.0'):
        return
    folder = mmaction_dir or _mmaction_dir()
    # drn/ has no __init__.py (a namespace package): the wheel left it out.
    if folder and not os.path.isfile(
            os.path.join(folder, 'models', 'localizers', 'drn', 'drn.py')):
        raise ImportError(
            f'MMAction2 {found["mmaction2"]} at {folder} cannot import its '
            'models: mmaction/models/localizers/drn is missing, as in the '
            'broken 1.2.0 wheel on PyPI. Install MMAction2 1.2.0 from source '
            'as its guide says (`git clone https://github.com/open-mmlab/'
            'mmaction2.git && cd mmaction2 && pip install -v -e .`), or '
            '`pip install mmaction2==1.1.0`.')
    transformers = have['transformers']
    if transformers is None:
        return
    if digit_version(transformers) >= digit_version('4.56.0'):
        raise ImportError(
            f'MMAction2 {found["mmaction2"]} imports its multimodal models '
            f'whenever transformers is installed, and they fail with '
            f'transformers {transformers} (4.56 removed '
            '`transformers.modeling_utils.apply_chunking_to_forward`). '
            'Install `pip install "transformers>=4.44,<4.56" timm`, or '
            'uninstall transformers.')
    if have['timm'] is None:
        raise ImportError(
            f'MMAction2 {found["mmaction2"]} imports its multimodal models '
            f'whenever transformers is installed ({transformers} is), and '
            'they need timm, which is not installed: `pip install timm`, or '
            'uninstall transformers.')


def _field(sample, name: str) -> torch.Tensor:
    """``sample``'s field ``name`` as MMAction2 1.2 stores it, or the
    ``item`` of the field ``name + 's'`` as 1.1 stores it; ``sample`` is an
    ``ActionDataSample`` or its ``to_dict()`` (what ``--dump`` writes)."""
    def get(key):
        return sample[key] if isinstance(sample, dict) else getattr(
            sample, key)
    if name in sample:
        return get(name)
    old = get(name + 's')
    return old['item'] if isinstance(old, dict) else old.item


def pred_score_of(sample) -> torch.Tensor:
    """The class scores of an ``ActionDataSample`` (what
    ``inference_recognizer`` returns) or of its dict (``tools/test.py
    --dump``), under MMAction2 1.1 (``pred_scores.item``) and 1.2
    (``pred_score``)."""
    return _field(sample, 'pred_score')


def gt_label_of(sample) -> torch.Tensor:
    """The ground-truth label tensor of an ``ActionDataSample`` or its dict,
    under MMAction2 1.1 (``gt_labels.item``) and 1.2 (``gt_label``)."""
    return _field(sample, 'gt_label')


def set_gt_label(sample, label):
    """Set the ground-truth label of an ``ActionDataSample`` under
    MMAction2 1.1 (``set_gt_labels``) and 1.2 (``set_gt_label``); returns
    the sample."""
    if hasattr(sample, 'set_gt_label'):
        return sample.set_gt_label(label)
    return sample.set_gt_labels(label)


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


__all__ = ['check_host_versions', 'host_versions', 'PlainHistoryBuffer',
           'to_weights_only', 'safe_globals', 'register_safe_globals',
           'pred_score_of', 'gt_label_of', 'set_gt_label', 'HOST_VERSIONS',
           'TESTED_INSTALL']
