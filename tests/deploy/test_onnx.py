"""tools/deployment/export_onnx.py and vivit_mm.deploy.onnx: every variant,
tokeniser and pooling exports, and onnxruntime's logits equal PyTorch's;
bad configs and mismatching checkpoints fail before anything is exported."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.deploy.test_features import (NUM_CLASSES, load_tool,
                                        tiny_backbone, write_tiny_recognizer)
from vivit_mm.convert.recognizer import recognizer_config
from vivit_mm.utils.build import build_model

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from vivit_mm.deploy.onnx import check_onnx, export_onnx  # noqa: E402

TOOL = REPO / 'tools' / 'deployment' / 'export_onnx.py'
ATOL = 1e-4
UNIFORM = dict(tokenizer='uniform', tubelet_size=1, patch_size=8)
# Every variant with both tokenisers; Models 1 and 2 with both poolings.
BACKBONES = {
    'm1-tubelet-token': tiny_backbone('ViViTM1'),
    'm1-uniform-gap': tiny_backbone('ViViTM1', pooling='gap', **UNIFORM),
    'm2-tubelet-gap': tiny_backbone('ViViTM2', pooling='gap',
                                    num_temporal_layers=1),
    'm2-uniform-token': tiny_backbone('ViViTM2', num_temporal_layers=1,
                                      **UNIFORM),
    'm3-tubelet': tiny_backbone('ViViTM3'),
    'm3-uniform': tiny_backbone('ViViTM3', **UNIFORM),
    'm4-tubelet': tiny_backbone('ViViTM4'),
    'm4-uniform': tiny_backbone('ViViTM4', **UNIFORM),
}


def tiny_recognizer(backbone):
    torch.manual_seed(0)
    model = build_model(recognizer_config(backbone, NUM_CLASSES)['model'])
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('dynamic', [False, True],
                         ids=['static', 'dynamic'])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_onnxruntime_matches_pytorch(name, dynamic, tmp_path):
    model = tiny_recognizer(BACKBONES[name])
    info = export_onnx(model, str(tmp_path / 'm.onnx'), dynamic_batch=dynamic)
    graph = onnx.load(info['path'])
    assert [o.version for o in graph.opset_import if o.domain == ''] == [18]
    (inp, ), (out, ) = graph.graph.input, graph.graph.output
    assert (inp.name, out.name) == ('video', 'scores')
    assert 'AFTER' in inp.doc_string and 'mean) / std' in inp.doc_string
    dims = [d.dim_value or d.dim_param
            for d in inp.type.tensor_type.shape.dim]
    T = BACKBONES[name]['num_frames']
    assert dims[1:] == [3, T, 32, 32]
    assert info['output_shape'][1] == NUM_CLASSES
    session = ort.InferenceSession(info['path'],
                                   providers=['CPUExecutionProvider'])
    if dynamic:
        assert isinstance(dims[0], str)  # symbolic N
        for batch in (1, 3):
            assert check_onnx(info['path'], model, batch=batch,
                              session=session) <= ATOL
    else:
        assert dims[0] == 1
        assert check_onnx(info['path'], model, session=session) <= ATOL


def test_opset_below_18_is_refused(tmp_path):
    model = tiny_recognizer(BACKBONES['m4-tubelet'])
    with pytest.raises(ValueError, match='opset must be an int >= 18'):
        export_onnx(model, str(tmp_path / 'm.onnx'), opset=17)
    assert not (tmp_path / 'm.onnx').exists()


def test_tool_end_to_end(tmp_path):
    config, ckpt = write_tiny_recognizer(tmp_path)
    (tmp_path / 'cwd').mkdir()
    out = tmp_path / 'out' / 'm.onnx'
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(config), str(ckpt), '--out',
         str(out), '--dynamic-batch'], cwd=tmp_path / 'cwd',
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'AFTER normalisation' in proc.stdout
    assert "input  'video': ['N', 3, 4, 32, 32]" in proc.stdout
    assert 'max |diff| =' in proc.stdout
    session = ort.InferenceSession(str(out),
                                   providers=['CPUExecutionProvider'])
    scores = session.run(None, {'video': np.zeros((2, 3, 4, 32, 32),
                                                  np.float32)})[0]
    assert scores.shape == (2, NUM_CLASSES)


def refused(capsys, out, *argv):
    """The tool's stderr for ``argv``, asserting that it failed (status 2)
    without writing ``out``."""
    tool = load_tool('tools/deployment/export_onnx.py')
    assert tool.main([str(a) for a in argv] + ['--out', str(out)]) == 2
    assert not out.exists()
    return capsys.readouterr().err


@pytest.fixture
def files(tmp_path):
    """A tiny recognizer's config and checkpoint, and an --out path."""
    return (*write_tiny_recognizer(tmp_path), tmp_path / 'm.onnx')


def test_mismatching_checkpoint_fails_before_export(files, capsys):
    config, ckpt, out = files
    err = refused(capsys, out, config, ckpt, '--cfg-options',
                  'model.cls_head.num_classes=7')
    assert f"Checkpoint '{ckpt}' does not fit the ViViTHead head" in err
    assert 'cls_head.fc_cls.weight: checkpoint [5, 32], model [7, 32]' in err
    assert 'another class count: 5 classes in the checkpoint, 7' in err
    err = refused(capsys, out, config, ckpt, '--cfg-options',
                  'model.backbone.arch.embed_dims=64',
                  'model.cls_head.in_channels=64')
    assert f"Checkpoint '{ckpt}' does not fit the ViViTM1 backbone" in err
    assert 'another width: embed_dims 32 in the checkpoint, 64 here' in err


def test_bad_config_fails_clearly(files, tmp_path, capsys):
    config, ckpt, out = files
    err = refused(capsys, out, config, ckpt, '--cfg-options',
                  'model.backbone.type=ResNet3d')
    assert "model.backbone.type is 'ResNet3d', not a ViViT backbone" in err
    assert 'ViViTM1' in err
    assert 'no.py' in refused(capsys, out, tmp_path / 'no.py', ckpt)
    assert 'no.pth' in refused(capsys, out, config, tmp_path / 'no.pth')


PROBE = r'''
import importlib.util, json, sys, io, contextlib
spec = importlib.util.spec_from_file_location('tool', sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
code = None
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        tool.parse_args(['--help'])
    except SystemExit as e:
        code = e.code
print(json.dumps(dict(code=code, help=out.getvalue(),
                      modules=sorted(sys.modules))))
'''


@pytest.mark.parametrize('tool', ['tools/deployment/export_onnx.py',
                                  'tools/misc/extract_features.py'])
def test_help_parses_without_torch(tool, tmp_path):
    proc = subprocess.run([sys.executable, '-c', PROBE, str(REPO / tool)],
                          capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['code'] == 0
    heavy = [m for m in ('torch', 'mmaction', 'vivit_mm', 'onnx', 'cv2')
             if m in result['modules']]
    assert not heavy, f'{tool} imports {heavy} before parsing --help'
    if 'export_onnx' in tool:
        assert 'AFTER' in result['help'] and 'normalisation' in \
            result['help']
