"""Shared by the tests of the checkpoint readers: checkpoints whose
unpickling would run code (each creates a marker file when unpickled, so a
test can check that it never was)."""
import os

import numpy as np
import pytest
import torch

#: Message part of every refusal by :func:`vivit_mm.convert.io.safe_load`.
WHY = 'can run arbitrary code'
HOSTILE_PAYLOADS = ('os.system', 'builtins.exec', 'getattr-tofile')


class _Call:
    """Pickles as ``fn(*args)``: what a malicious checkpoint does."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __call__(self, *args):
        return self.fn(*args)

    def __reduce__(self):
        return (self.fn, self.args)


def payload(marker, kind='os.system'):
    """An object whose unpickling creates the file ``marker``."""
    m = str(marker)
    return {
        'os.system': lambda: _Call(os.system, (f'touch {m}', )),
        'builtins.exec': lambda: _Call(
            exec, (f'open({m!r}, "w").write("x")', )),
        # getattr(array, 'tofile')(path): why builtins.getattr must never be
        # allow-listed, even next to harmless numpy types.
        'getattr-tofile': lambda: _Call(
            _Call(getattr, (np.arange(3.0), 'tofile')), (m, )),
    }[kind]()


def write_hostile_checkpoint(path, marker, kind='os.system'):
    """A torch checkpoint at ``path`` with a plausible state dict and a
    ``meta`` entry whose unpickling creates ``marker``."""
    torch.save(dict(state_dict={'backbone.cls_token': torch.zeros(1, 1, 32)},
                    meta=payload(marker, kind)), path)
    return path


@pytest.fixture(params=HOSTILE_PAYLOADS)
def hostile(request, tmp_path):
    """(checkpoint path, marker path), for each kind of payload."""
    marker = tmp_path / 'pwned'
    path = write_hostile_checkpoint(
        tmp_path / f'hostile_{request.param}.pth', marker, request.param)
    return path, marker


@pytest.fixture
def save_flax_msgpack():
    """``save(state, path)``: write a nested dict of arrays as flax's
    ``checkpoints.save_checkpoint`` does (msgpack, numpy arrays as ext type
    1 holding (shape, dtype name, C-order bytes), numpy scalars as ext type
    3). Skips the test without msgpack."""
    msgpack = pytest.importorskip('msgpack')

    def pack_array(arr):
        return msgpack.ExtType(1, msgpack.packb(
            (list(arr.shape), arr.dtype.name, arr.tobytes('C')),
            use_bin_type=True))

    def default(obj):
        if isinstance(obj, np.ndarray):
            return pack_array(obj)
        if isinstance(obj, np.generic):  # numpy scalar: ext type 3
            return msgpack.ExtType(3, pack_array(np.asarray(obj)).data)
        raise TypeError(type(obj))

    def save(state, path):
        with open(path, 'wb') as f:
            f.write(msgpack.packb(state, default=default, strict_types=True))

    return save
