"""tools/analysis_tools/get_flops.py prints the paper's Table 2 numbers."""
import subprocess
import sys

from tests.conftest import REPO


def test_get_flops_tool_prints_table2_numbers(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / 'tools/analysis_tools/get_flops.py'),
         str(REPO / 'configs/_base_/models/vivit_m1.py')],
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert '451.5' in out and '88.95' in out, out


def test_small_models_get_mflops():
    """A model under 1 GFLOP is printed in MFLOPs with three significant
    digits, not as 'GFLOPs: 0.0'."""
    from importlib.machinery import SourceFileLoader

    from tests.conftest import REPO
    tool = SourceFileLoader('vivit_get_flops', str(
        REPO / 'tools' / 'analysis_tools' / 'get_flops.py')).load_module()
    assert tool.format_macs(23_412_345) == \
        'MFLOPs (multiply-accumulates): 23.4'
    assert tool.format_macs(283_300_000_000) == \
        'GFLOPs (multiply-accumulates): 283.3'


def test_configs_with_batch_blending_are_counted():
    """vivit_m2_ssv2.py mixes batches (MixupBlending), which cannot be
    built on the meta device; the count leaves the blending out and equals
    that of the same model without it."""
    from mmengine.config import Config

    from vivit_mm.utils import recognizer_complexity
    cfg = Config.fromfile(str(REPO / 'configs/vivit_m2_ssv2.py'))
    assert cfg.model.data_preprocessor.blending.type == 'MixupBlending'
    counted = recognizer_complexity(cfg.model)
    cfg.model.data_preprocessor.blending = None
    assert counted == recognizer_complexity(cfg.model)
    assert counted[1] == 114_889_134  # 115.06 M with 400 classes
