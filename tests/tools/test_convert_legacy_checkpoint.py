"""``tools/misc/convert_legacy_checkpoint.py``: a trusted checkpoint that
mmengine saved without ``WeightsOnlyCheckpointHook`` is rewritten so that it
loads with ``weights_only=True``; without ``--trust-source`` nothing is
unpickled."""
import os
from importlib.machinery import SourceFileLoader

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from tests.conftest import REPO
from tests.convert.conftest import write_hostile_checkpoint
from vivit_mm.compat import PlainHistoryBuffer
from vivit_mm.convert.io import disallowed_globals, safe_load

TOOL = SourceFileLoader('convert_legacy', str(
    REPO / 'tools' / 'misc' / 'convert_legacy_checkpoint.py')).load_module()


def test_legacy_mmengine_checkpoint_refused_then_converted(tmp_path):
    buf = HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2], max_length=10)
    legacy = tmp_path / 'legacy.pth'
    # mmengine's own pickling (vivit_mm changes nothing of HistoryBuffer).
    torch.save(dict(message_hub=dict(log_scalars={'loss': buf}),
                    eta=np.float64(1.5), arr=np.ones(2)), legacy)
    assert 'builtins.getattr' in disallowed_globals(str(legacy))
    with pytest.raises(ValueError, match='convert_legacy_checkpoint'):
        safe_load(legacy)

    out = tmp_path / 'converted.pth'
    assert TOOL.main([str(legacy), str(out)]) == 2  # needs --trust-source
    assert not out.exists()
    assert TOOL.main([str(legacy), str(out), '--trust-source']) == 0
    ckpt = safe_load(out)
    restored = ckpt['message_hub']['log_scalars']['loss']
    assert isinstance(restored, PlainHistoryBuffer)
    np.testing.assert_array_equal(restored.data[0], [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(restored.data[1], [1, 1, 2])
    assert restored.max_length == 10
    assert restored.mean() == pytest.approx(7.0 / 4.0)  # sum / counts
    assert ckpt['eta'] == 1.5 and ckpt['arr'] == [1.0, 1.0]
    # A file that already loads is left alone.
    assert TOOL.main([str(out), str(tmp_path / 'again.pth')]) == 0
    assert not (tmp_path / 'again.pth').exists()


def test_converter_without_trust_never_unpickles(tmp_path):
    marker = tmp_path / 'pwned'
    path = write_hostile_checkpoint(tmp_path / 'hostile.pth', marker)
    assert TOOL.main([str(path), str(path) + '.out']) == 2
    assert not marker.exists()
    assert not os.path.exists(str(path) + '.out')
    assert TOOL.main([str(tmp_path / 'absent.pth'), str(path) + '.out']) == 2
