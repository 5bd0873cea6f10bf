"""Read official (scenic/flax) checkpoints with numpy and ``msgpack`` only,
no JAX or flax.

Supported formats:

* flax msgpack checkpoints, as ``flax.training.checkpoints.save_checkpoint``
  writes them (scenic's released ``checkpoint`` files): a msgpack map whose
  arrays are msgpack extension type 1 holding ``(shape, dtype name,
  C-order bytes)``; numpy scalars are extension type 3, complex numbers type
  2, and arrays over 1 GiB are split into ``__msgpack_chunked_array__``
  maps. ``bfloat16`` arrays are widened to float32.
* ``.npz`` files whose keys are the ``/``-joined parameter paths.
* a folder holding ``checkpoint_<step>`` files (the newest is read) or a
  single ``checkpoint`` file.

Not supported: Orbax/OCDBT checkpoint folders and TensorFlow SavedModels.
"""
import os
import re
from typing import Any, Dict

import numpy as np

_EXT_NDARRAY, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3
_CHUNKED = '__msgpack_chunked_array__'


def _ndarray_from_bytes(data: bytes) -> np.ndarray:
    import msgpack
    shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
    name = dtype_name.decode() if isinstance(dtype_name, bytes) \
        else dtype_name
    if name == 'bfloat16':  # numpy has no bfloat16: widen the bits
        bits = np.frombuffer(buffer, dtype='<u2').astype('<u4') << 16
        return bits.view('<f4').reshape(shape)
    return np.frombuffer(buffer, dtype=np.dtype(name)).reshape(shape)


def _ext_hook(code: int, data: bytes) -> Any:
    import msgpack
    if code == _EXT_NDARRAY:
        return _ndarray_from_bytes(data)
    if code == _EXT_NPSCALAR:
        return _ndarray_from_bytes(data)[()]
    if code == _EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    raise ValueError(f'Unknown msgpack extension type {code} in a flax '
                     'checkpoint.')


def _unchunk(tree: Any) -> Any:
    if isinstance(tree, dict):
        if tree.get(_CHUNKED):
            shape = [tree['shape'][str(i)] for i in range(len(tree['shape']))]
            chunks = [tree['chunks'][str(i)]
                      for i in range(len(tree['chunks']))]
            return np.concatenate([c.reshape(-1) for c in chunks]).reshape(
                shape)
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read_flax_msgpack(path: str) -> Dict[str, Any]:
    """The nested state dict of a flax msgpack checkpoint file."""
    import msgpack
    with open(path, 'rb') as f:
        data = f.read()
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False,
                               strict_map_key=False)
    except (msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException,
            ValueError) as e:
        raise ValueError(f'{path!r} is not a flax msgpack checkpoint: {e}') \
            from e
    if not isinstance(tree, dict):
        raise ValueError(f'{path!r} is not a flax msgpack checkpoint (its '
                         f'top level is a {type(tree).__name__}, not a map).')
    return _unchunk(tree)


def flatten_tree(tree: Any, prefix: str = '') -> Dict[str, np.ndarray]:
    """``{'a': {'b': x}}`` -> ``{'a/b': x}``; only array leaves are kept
    (step counters and other scalars are dropped)."""
    out: Dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten_tree(v, f'{prefix}{k}/'))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(flatten_tree(v, f'{prefix}{i}/'))
    elif isinstance(tree, np.ndarray):
        out[prefix[:-1]] = tree
    return out


def _resolve_file(path: str) -> str:
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f'{path!r} does not exist.')
    steps = {}
    for name in os.listdir(path):
        m = re.fullmatch(r'checkpoint_(\d+)', name)
        if m and os.path.isfile(os.path.join(path, name)):
            steps[int(m.group(1))] = name
    if steps:
        return os.path.join(path, steps[max(steps)])
    if os.path.isfile(os.path.join(path, 'checkpoint')):
        return os.path.join(path, 'checkpoint')
    raise ValueError(
        f'No flax checkpoint file in {path!r}: expected checkpoint_<step> or '
        'checkpoint files (flax msgpack). Orbax/OCDBT checkpoint folders are '
        'not supported.')


def load_flax_arrays(path: str) -> Dict[str, np.ndarray]:
    """Every array of a flax msgpack checkpoint (file or folder) or an
    ``.npz`` tree, keyed by its ``/``-joined path."""
    path = _resolve_file(os.fspath(path))
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic.startswith(b'PK'):  # a zip archive: numpy's .npz
        with np.load(path, allow_pickle=False) as npz:
            return {k.strip('/'): np.asarray(npz[k]) for k in npz.files}
    return flatten_tree(read_flax_msgpack(path))
