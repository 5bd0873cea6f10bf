"""tools/analysis_tools/benchmark_onnx.py: exports each config's (shrunk)
recognizer, checks it against PyTorch and times both interleaved; the
table's rows are the configs given, with the shape they ran at."""
import runpy

import pytest

from tests.conftest import REPO

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

TOOL = str(REPO / 'tools' / 'analysis_tools' / 'benchmark_onnx.py')
TINY = '''_base_ = [{base!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=3,
                            num_heads=2, feedforward_channels=64),
                  img_size=32, patch_size=16),
    cls_head=dict(in_channels=32))
'''


def test_table_of_two_variants(capsys, tmp_path):
    tool = runpy.run_path(TOOL)
    configs = []
    for i in (3, 4):
        path = tmp_path / f'm{i}.py'
        path.write_text(TINY.format(
            base=str(REPO / 'configs' / f'vivit_m{i}_k400.py')))
        configs.append(str(path))
    assert tool['main']([*configs, '--layers', '1', '--frames', '4',
                         '--iters', '2', '--threads', '1']) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.startswith('ViViTM')]
    assert [r[:2] for r in rows] == [['ViViTM3', '1L'], ['ViViTM4', '1L']]
    for r in rows:
        assert r[2] == '1x3x4x32x32'
        torch_s, ort_s, ratio, diff = map(float, (r[3], r[4], r[5][:-1],
                                                   r[6]))
        assert torch_s > 0 and ort_s > 0 and diff < 1e-4
        assert ratio == pytest.approx(torch_s / ort_s, rel=0.15, abs=0.05)
    assert '1 intra-op threads' in out and 'load average' in out


def test_bad_input(capsys, tmp_path):
    tool = runpy.run_path(TOOL)
    with pytest.raises(SystemExit):
        tool['parse_args'](['x.py', '--layers', '-1'])
    assert tool['main']([str(tmp_path / 'missing.py')]) == 2
    assert 'does not exist' in capsys.readouterr().err
