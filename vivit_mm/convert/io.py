"""Reading checkpoints, every format, without running pickled code.

* :func:`safe_load`: ``torch.load(weights_only=True)`` with an error that
  names the disallowed globals and how to convert a trusted legacy file.
* :func:`read_checkpoint`: any supported file by its kind: torch pickles
  (mmpretrain, timm, MMAction2), ``.safetensors``, numpy ``.npz`` (read
  with ``allow_pickle=False``), flax msgpack checkpoints (scenic's
  ``checkpoint`` / ``checkpoint_<step>`` files or a folder of them, see
  :mod:`vivit_mm.convert.flax_io`).
* :func:`unwrap_state_dict`: the parameters inside what was read
  (``state_dict``/``model`` wrappers, a DDP ``module.`` prefix), numpy
  arrays as tensors.

Nothing here knows a model; key layouts are
:mod:`vivit_mm.convert.layouts`.
"""
import os
import re
from typing import Any, Dict, List, Union

import numpy as np
import torch

CONVERT_HINT = (
    'If you trust this file (e.g. you saved it yourself with mmengine before '
    'installing vivit_mm), convert it once with '
    '`python tools/misc/convert_legacy_checkpoint.py IN OUT --trust-source`; '
    'the converted file loads safely.')

PathLike = Union[str, os.PathLike]


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


def disallowed_globals(src: Any) -> List[str]:
    """The globals a checkpoint's pickle names that a weights-only load
    refuses (read from the pickle opcodes; nothing in the file is
    executed); empty for a file that loads, or that is not a zip
    checkpoint."""
    return _unsafe_globals(src)[1]


def refusal_message(src: Any, err: Any = '') -> str:
    """Why a weights-only load of ``src`` is refused, and what to do."""
    found, names = _unsafe_globals(src)
    what = (f'it needs {", ".join(names)}, which are not on the allow-list'
            if names else
            'it holds objects outside the weights-only allow-list')
    legacy = ('builtins.getattr' in found
              and 'mmengine.logging.history_buffer.HistoryBuffer' in found)
    return (f'Refusing to load checkpoint {src!r}: {what}. Unpickling such '
            'objects can run arbitrary code, so vivit_mm never loads them '
            '(torch.load weights_only=True). ' +
            ('This looks like a checkpoint saved by mmengine without '
             "vivit_mm's WeightsOnlyCheckpointHook (its HistoryBuffer "
             'pickles methods through builtins.getattr). ' if legacy else '')
            + CONVERT_HINT + (f' Details from torch: {err}' if err else ''))


def is_refusal(err: BaseException) -> bool:
    """Whether ``err`` is torch refusing a weights-only load."""
    text = str(err)
    return 'weights_only' in text or 'Unsupported global' in text


def safe_load(src: Union[PathLike, Any],
              map_location: Union[str, torch.device, None] = 'cpu') -> Any:
    """Read a torch checkpoint with ``torch.load(weights_only=True)``.

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
        if not is_refusal(e):
            raise
        raise ValueError(refusal_message(src, e)) from e


def is_flax_msgpack(path: str) -> bool:
    """Whether ``path`` names a flax msgpack checkpoint (file or folder)."""
    name = os.path.basename(path.rstrip(os.sep))
    return (os.path.isdir(path) or path.endswith('.msgpack')
            or re.fullmatch(r'checkpoint(_\d+)?', name) is not None)


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path!r} does not exist.')


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint file (or a flax checkpoint folder) of any
    supported format into a dict, without running pickled code.

    ``.npz`` with ``np.load(allow_pickle=False)``; a flax msgpack file
    (``checkpoint``, ``checkpoint_<step>``, ``*.msgpack`` or a folder of
    them) flattened to ``'/'``-joined keys; ``.safetensors`` with
    ``safetensors``; anything else with :func:`safe_load`.
    """
    path = os.path.expanduser(os.fspath(path))
    if path.endswith('.npz'):
        _require_file(path)
        with np.load(path, allow_pickle=False) as npz:
            return {k.strip('/'): npz[k] for k in npz.files}
    if is_flax_msgpack(path):
        from .flax_io import load_flax_arrays
        return load_flax_arrays(path)
    if path.endswith('.safetensors'):  # e.g. timm weights from the HF hub
        _require_file(path)
        from safetensors.torch import load_file
        return load_file(path)
    return safe_load(path)


def unwrap_state_dict(checkpoint: Union[PathLike, dict]
                      ) -> Dict[str, torch.Tensor]:
    """The parameters of a checkpoint (a path is read with
    :func:`read_checkpoint`): the ``state_dict`` or ``model`` entry when
    there is one, without a DDP ``module.`` prefix, numpy arrays as
    tensors."""
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = read_checkpoint(checkpoint)
    if not isinstance(checkpoint, dict):
        raise TypeError('checkpoint must be a path or a state dict, got '
                        f'{type(checkpoint).__name__}.')
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return {k: torch.from_numpy(np.array(v, copy=True))
            if isinstance(v, np.ndarray) else v
            for k, v in checkpoint.items()}


__all__ = ['safe_load', 'read_checkpoint', 'unwrap_state_dict',
           'refusal_message', 'disallowed_globals', 'is_refusal', 'is_flax_msgpack',
           'CONVERT_HINT']
