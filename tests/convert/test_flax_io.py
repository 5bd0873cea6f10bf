"""flax msgpack checkpoints (scenic's ``checkpoint_<step>`` files) read
without JAX: arrays, numpy scalars, half and bfloat16 leaves, chunked
arrays."""
import numpy as np
import pytest

from vivit_mm.convert import load_flax_arrays, read_flax_msgpack


def test_msgpack_reader_round_trip(tmp_path, save_flax_msgpack):
    msgpack = pytest.importorskip('msgpack')
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    big = np.arange(10, dtype=np.int32)
    bf16_bits = (a.view(np.uint32) >> 16).astype(np.uint16)  # truncate
    state = {
        'params': {'w': a, 'nested': {'b': np.float64(2.5)}},
        'half': a.astype(np.float16),
        # flax splits arrays over 1 GiB into chunks; same format, small
        'chunked': {'__msgpack_chunked_array__': True,
                    'shape': {'0': 2, '1': 5},
                    'chunks': {'0': big[:6], '1': big[6:]}},
        'step': 3,
    }
    save_flax_msgpack(state, tmp_path / 'ckpt')
    # bfloat16 leaf, as flax writes it (dtype name 'bfloat16', 2 bytes)
    raw = msgpack.packb({'bf16': msgpack.ExtType(1, msgpack.packb(
        ([3, 4], 'bfloat16', bf16_bits.tobytes()), use_bin_type=True))},
        use_bin_type=True)
    (tmp_path / 'bf16').write_bytes(raw)

    back = read_flax_msgpack(str(tmp_path / 'ckpt'))
    np.testing.assert_array_equal(back['params']['w'], a)
    assert back['params']['nested']['b'] == 2.5 and back['step'] == 3
    assert back['half'].dtype == np.float16
    np.testing.assert_array_equal(back['chunked'], big.reshape(2, 5))
    arrays = load_flax_arrays(str(tmp_path / 'ckpt'))
    assert set(arrays) == {'params/w', 'half', 'chunked'}  # arrays only
    bf16 = read_flax_msgpack(str(tmp_path / 'bf16'))['bf16']
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16, a, rtol=2**-7)  # bf16 keeps 8 bits
    np.testing.assert_array_equal(
        bf16.view(np.uint32), (a.view(np.uint32) >> 16) << 16)
