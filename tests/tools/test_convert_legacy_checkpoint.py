"""tools/misc/convert_legacy_checkpoint.py: a checkpoint mmengine saved
without WeightsOnlyCheckpointHook is refused with the way out, converted
once with --trust-source, and never unpickled without it."""
from importlib.machinery import SourceFileLoader

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from tests.conftest import REPO
from tests.convert.conftest import write_hostile_checkpoint
from vivit_mm.convert.io import disallowed_globals, safe_load

TOOL = str(REPO / 'tools' / 'misc' / 'convert_legacy_checkpoint.py')


def _tool():
    return SourceFileLoader('convert_legacy', TOOL).load_module()


def test_legacy_mmengine_checkpoint_refused_then_converted(tmp_path):
    buf = HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2], max_length=10)
    legacy = tmp_path / 'legacy.pth'
    torch.save(dict(message_hub=dict(log_scalars={'loss': buf}),
                    eta=np.float64(1.5), arr=np.ones(2)), legacy)
    assert 'builtins.getattr' in disallowed_globals(str(legacy))
    with pytest.raises(ValueError, match='convert_legacy_checkpoint'):
        safe_load(legacy)

    tool = _tool()
    out = tmp_path / 'converted.pth'
    assert tool.main([str(legacy), str(out)]) == 2  # needs --trust-source
    assert not out.exists()
    assert tool.main([str(legacy), str(out), '--trust-source']) == 0
    ckpt = safe_load(out)
    restored = ckpt['message_hub']['log_scalars']['loss']
    np.testing.assert_array_equal(restored.data[0], [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(restored.data[1], [1, 1, 2])
    assert restored.max_length == 10
    assert restored.mean() == pytest.approx(7.0 / 4.0)  # sum / counts
    assert ckpt['eta'] == 1.5 and ckpt['arr'] == [1.0, 1.0]


def test_converter_without_trust_never_unpickles(tmp_path):
    marker = tmp_path / 'pwned'
    path = write_hostile_checkpoint(tmp_path / 'hostile.pth', marker)
    assert _tool().main([str(path), str(path) + '.out']) == 2
    assert not marker.exists()
