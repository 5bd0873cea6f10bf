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
