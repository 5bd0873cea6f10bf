"""Every optional dependency is checked where a tool needs it, before any
work, with one line naming what to install (vivit_mm/utils/optional.py);
a tool that needs none runs with all of them missing. Absence is simulated
in a subprocess with ``sys.modules[name] = None``, which makes the import
fail as for a package that is not installed."""
import sys

import pytest

from tests.conftest import REPO
from tests.tools.helpers import run
from vivit_mm.utils.optional import (OPTIONAL, MissingDependency,
                                     install_hint, require)

K400 = str(REPO / 'configs' / 'vivit_m2_k400.py')
#: Runs the tool at argv[1] with the modules of argv[2] (comma-separated)
#: missing: not importable, and without package metadata, as for a package
#: that is not installed (MMAction2 1.2 reads the metadata of transformers
#: to decide whether to import its multimodal models).
BLOCKED = '''import runpy, sys
blocked = sys.argv[2].split(',')
for m in blocked:
    sys.modules[m] = None


def hide(module):
    real = module.distribution

    def distribution(name):
        if name.lower().replace('_', '-') in blocked:
            raise module.PackageNotFoundError(name)
        return real(name)
    module.distribution = distribution


import importlib.metadata
hide(importlib.metadata)
try:
    import importlib_metadata
    hide(importlib_metadata)
except ImportError:
    pass
tool = sys.argv[1]
sys.argv = [tool] + sys.argv[3:]
runpy.run_path(tool, run_name='__main__')
'''


def without(modules, tool, *args):
    return run([sys.executable, '-c', BLOCKED, str(REPO / tool),
                ','.join(modules), *map(str, args)])


def one_line_error(proc, expected):
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if 'needs' in ln]
    assert lines == [expected], proc.stderr[-2000:]


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxscript', None)
    with pytest.raises(MissingDependency) as e:
        require('onnx', 'onnxscript', purpose='export')
    assert str(e.value) == ("export needs onnxscript: pip install -e "
                            "'.[deploy]' (or pip install onnxscript).")
    assert install_hint(['av', 'tensorboard']) == (
        "pip install -e '.[pyav,tensorboard]' (or pip install av "
        'tensorboard)')
    require('onnx', purpose='export')  # installed: nothing raised


@pytest.mark.parametrize('tool, modules, args, expected', [
    ('tools/deployment/export_onnx.py', ['onnxscript'],
     [K400, 'missing.pth', '--out', 'x.onnx'],
     "error: export_onnx.py needs onnxscript: pip install -e '.[deploy]' "
     '(or pip install onnxscript).'),
    ('tools/analysis_tools/benchmark_onnx.py', ['onnxruntime'], [K400],
     "error: benchmark_onnx.py needs onnxruntime: pip install -e "
     "'.[deploy]' (or pip install onnxruntime)."),
    ('tools/analysis_tools/benchmark_pipeline.py', ['av'], [K400],
     'error: benchmark_pipeline.py (generating videos; --videos DIR uses '
     "yours) needs av: pip install -e '.[pyav]' (or pip install av)."),
    ('tools/analysis_tools/benchmark.py', ['transformers'],
     ['--variants', 'm1', '--out-dir', 'unused'],
     'error: benchmark.py (without --no-compare) needs transformers: pip '
     "install -e '.[tests]' (or pip install transformers)."),
    # transformers needs safetensors: without it, neither is installed
    ('tools/convert/vivit_to_hf.py', ['safetensors', 'transformers'],
     [K400, 'missing.pth', 'out_dir'],
     'error: vivit_to_hf.py (writes model.safetensors) needs safetensors: '
     "pip install -e '.[convert]' (or pip install safetensors)."),
    ('tools/convert/scenic_to_vivit.py', ['msgpack'],
     ['checkpoint_100', 'out.pth', '--out-config', 'out.py'],
     'error: scenic_to_vivit.py (flax msgpack checkpoints) needs msgpack: '
     "pip install -e '.[convert]' (or pip install msgpack)."),
])
def test_tool_names_the_missing_package(tool, modules, args, expected,
                                        tmp_path):
    one_line_error(without(modules, tool, *args), expected)


def test_hf_to_vivit_needs_safetensors_only_for_safetensors(tmp_path):
    (tmp_path / 'model.safetensors').write_bytes(b'')
    one_line_error(
        without(['safetensors', 'transformers'],
                'tools/convert/hf_to_vivit.py', tmp_path,
                tmp_path / 'o.pth', '--out-config', tmp_path / 'o.py'),
        'error: hf_to_vivit.py (reading model.safetensors) needs '
        "safetensors: pip install -e '.[convert]' (or pip install "
        'safetensors).')


def test_train_tensorboard(trained, tmp_path):
    """--tensorboard adds TensorboardVisBackend; pre-flight names it."""
    one_line_error(
        without(['tensorboard'], 'tools/train.py', trained / 'cfg.py',
                '--tensorboard', '--work-dir', tmp_path / 'wd'),
        'error: visualizer.vis_backends[1] (TensorboardVisBackend) needs '
        "tensorboard: pip install -e '.[tensorboard]' (or pip install "
        'tensorboard).')
    assert not (tmp_path / 'wd').exists()


def test_pipeline_benchmark_on_your_videos_needs_no_pyav(tmp_path):
    """--videos DIR with the config's decoder (decord) and OpenCV's video
    description: the base install."""
    from tests.tools.helpers import write_video
    write_video(tmp_path / 'a.mp4', 64, 48, 40, seed=0)
    proc = without(['av', 'torchcodec'],
                   'tools/analysis_tools/benchmark_pipeline.py', K400,
                   '--split', 'test', '--videos', tmp_path, '--num-clips',
                   '1', '--model-clips-per-s', '1', '--out-dir',
                   tmp_path / 'out')
    assert proc.returncode == 0, proc.stderr[-2000:]
    [row] = [ln for ln in proc.stdout.splitlines() if 'a.mp4' in ln]
    assert [c.strip() for c in row.strip('|').split('|')] == [
        'a.mp4', '64x48', '8', '5.0', 'mpeg4']


def test_base_install_tool_needs_none_of_them():
    """get_flops.py runs with every optional package missing."""
    proc = without(sorted(OPTIONAL), 'tools/analysis_tools/get_flops.py',
                   K400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'GFLOPs' in proc.stdout or 'GMAC' in proc.stdout, proc.stdout


def test_pyav_decoder_transform_names_the_extra(monkeypatch, tmp_path):
    from vivit_mm.datasets.decoders import PyAVIndexInit
    video = tmp_path / 'x.mp4'
    video.write_bytes(b'not read: PyAV is checked first')
    monkeypatch.setitem(sys.modules, 'av', None)
    with pytest.raises(MissingDependency, match=r"PyAVIndexInit/PyAVIndex"
                       r"Decode \(its wheels bundle FFmpeg\) needs av: pip "
                       r"install -e '\.\[pyav\]'"):
        PyAVIndexInit()(dict(filename=str(video)))
