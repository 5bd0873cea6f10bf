"""Every command-line tool parses its arguments before it imports torch,
mmengine's Runner or MMAction2, so ``--help`` and argument errors answer at
once (checked as an import-free parse in a fresh interpreter, not as a
timing)."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

TOOLS = ['tools/train.py', 'tools/test.py', 'tools/run_demo.py',
         'demo/demo.py', 'tools/convert/hf_to_vivit.py',
         'tools/convert/scenic_to_vivit.py', 'tools/convert/vivit_to_hf.py',
         'tools/misc/convert_legacy_checkpoint.py',
         'tools/analysis_tools/get_flops.py',
         'tools/analysis_tools/benchmark.py',
         'tools/deployment/export_onnx.py', 'tools/misc/extract_features.py',
         'tools/visualizations/vis_attention.py',
         'tools/analysis_tools/attention_object_mass.py',
         'tools/analysis_tools/benchmark_onnx.py',
         'tools/data/build_video_lists.py',
         'tools/analysis_tools/init_study.py',
         'tools/analysis_tools/plan_memory.py']
HEAVY = ('torch', 'mmaction', 'mmengine.runner', 'vivit_mm', 'cv2')

PROBE = r'''
import importlib.util, io, json, sys, contextlib
path, argv = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location('tool', path)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
code = None
with contextlib.redirect_stdout(io.StringIO()), \
        contextlib.redirect_stderr(io.StringIO()):
    try:
        tool.parse_args(argv)
    except SystemExit as e:
        code = e.code
print(json.dumps(dict(code=code, modules=sorted(sys.modules))))
'''


def _parse(tool, argv):
    proc = subprocess.run(
        [sys.executable, '-c', PROBE, str(REPO / tool), json.dumps(argv)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('tool', TOOLS)
@pytest.mark.parametrize('argv, code', [(['--help'], 0),
                                        (['--no-such-option'], 2)])
def test_parses_without_the_heavy_stack(tool, argv, code):
    result = _parse(tool, argv)
    assert result['code'] == code
    loaded = [m for m in HEAVY if m in result['modules']]
    assert not loaded, f'{tool} imports {loaded} before parsing {argv}'
