"""End-to-end runs of tools/analysis_tools/benchmark.py on tiny shapes."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools/analysis_tools/benchmark.py'
TINY_RUN = ['--layers', '1', '--batch', '1', '--iters', '1', '--warmup', '0',
            '--gemm-sizes', '64', '--threads', '1', '--no-step-peak']


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('vivit_benchmark', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json(out_dir: Path) -> dict:
    return json.loads((out_dir / 'benchmark.json').read_text())


def test_benchmark_tool_end_to_end(tool, tmp_path):
    pytest.importorskip('matplotlib')
    rep = tool.main([
        '--arch', '32,4,128', '--layers', '1', '--frames', '2', '4',
        '--img-size', '32', '--batch', '1', '--iters', '1', '--warmup', '0',
        '--gemm-sizes', '64', '--variants', 'm1', 'm3', '--compare-frames',
        '2', '--cp-frames', '2', '--cp-img-size', '32', '--no-amp',
        '--threads', '1', '--no-step-peak', '--out-dir', str(tmp_path)
    ] + ([] if importlib.util.find_spec('transformers') else
         ['--no-compare']))
    for ext in ('md', 'json', 'png'):
        assert (tmp_path / f'benchmark.{ext}').stat().st_size > 0
    data = _json(tmp_path)
    sweep = data['sweep']
    assert [(r['name'], r['frames']) for r in sweep] == [
        ('m1', 2), ('m3', 2), ('m1', 4), ('m3', 4)]
    for r in sweep:
        assert r['fwd_clips_s'] > 0 and r['fwd_util'] > 0
        assert r['act_bytes'] > 0 and r['gmacs'] > 0
    # twice the frames: twice the tokens, more activation memory
    by = {(r['name'], r['frames']): r for r in sweep}
    assert by['m3', 4]['act_bytes'] > 1.5 * by['m3', 2]['act_bytes']
    assert data['checkpoint']['act_ratio'] <= 0.5
    if 'compare' in data:
        macs = data['compare']['macs']
        # same shapes on both sides: the same multiply-accumulates
        hf = [v for k, v in macs.items() if k.startswith('HF')]
        assert all(v == macs['vivit_mm Model 1'] for v in hf)
    assert '| variant | frames |' in rep.lines[rep.lines.index(
        '## Variants against frames') + 4]
    assert [r['fused'] for r in data['m1_attention_memory']] == [
        True, False] * 2
    assert data['args']['gemm_n'] == 64 and 'gemm_fn' not in data['args']
    assert data['args']['config_backbone'] is None


def test_benchmark_tool_on_a_config(tool, tmp_path):
    tool.main([
        str(ROOT / 'configs/vivit_m4_k400.py'), '--arch', '32,4,64',
        '--layers', '1', '--frames', '2', '--img-size', '32', '--batch', '1',
        '--iters', '1', '--warmup', '0', '--gemm-sizes', '64', '--no-compare',
        '--no-cp', '--no-step-peak', '--threads', '1', '--out-dir',
        str(tmp_path)
    ])
    data = _json(tmp_path)
    (rec, ) = data['sweep']
    assert (rec['name'], rec['frames']) == ('ViViTM4', 2)
    assert [r['variant'] for r in data['amp']['results']] == ['ViViTM4']
    assert data['amp']['results'][0]['rel_err'] < 5e-2
    # no datasheet peak for a CPU: no MFU
    assert data['amp']['bf16_peak'] is None
    assert 'bf16_train_mfu' not in data['amp']['results'][0]


@pytest.mark.parametrize('shape', [['--frames=4', '--img-size=16'],
                                   ['--frames', '4', '--img-size', '16']],
                         ids=['equals', 'separate'])
def test_a_config_takes_frames_and_img_size_in_either_spelling(
        tool, tmp_path, shape):
    """``--frames=4`` overrides the config's 8 frames as ``--frames 4``
    does (the tool once looked for the literal word ``--frames``)."""
    tool.main([str(ROOT / 'configs/vivit_m2_synthetic.py'), *shape,
               *TINY_RUN, '--no-compare', '--no-cp', '--no-amp',
               '--out-dir', str(tmp_path)])
    data = _json(tmp_path)
    assert [r['frames'] for r in data['sweep']] == [4]
    assert data['args']['frames'] == [4] and data['args']['img_size'] == 16
    assert '16x16, patch 8, tubelet 1' in data['title']


def test_a_config_without_frames_sweeps_its_own_shape(tool, tmp_path):
    tool.main([str(ROOT / 'configs/vivit_m2_synthetic.py'), *TINY_RUN,
               '--no-compare', '--no-cp', '--no-amp', '--no-train',
               '--out-dir', str(tmp_path)])
    data = _json(tmp_path)
    assert [r['frames'] for r in data['sweep']] == [8]
    assert '32x32, patch 8, tubelet 1' in data['title']
    assert not (tmp_path / 'benchmark.png').exists()  # one frame count


def test_benchmark_tool_rejects_bad_options(tool, capsys):
    for argv, option in ((['--frames', '0'], '--frames'),
                         (['--frames=0'], '--frames'),
                         (['--arch', 'xl'], '--arch'),
                         (['--peak-tflops', '0'], '--peak-tflops'),
                         (['--batch', '-1'], '--batch'),
                         (['--variants', 'm5'], '--variants')):
        with pytest.raises(SystemExit):
            tool.parse_settings(argv)
        assert option in capsys.readouterr().err, argv
    assert tool.parse_settings(['--arch', 'l']).arch == dict(
        embed_dims=1024, num_heads=16, feedforward_channels=4096)
    assert tool.parse_settings(['--arch', '64,4,256']).arch == dict(
        embed_dims=64, num_heads=4, feedforward_channels=256)
    s = tool.parse_settings(['--peak-tflops', '100', '--frames=2'])
    assert (s.peak_tflops, s.frames, s.img_size) == (100.0, (2, ), 160)


def test_help_names_every_option_and_the_examples(tool):
    text = tool.build_parser().format_help()
    for option in ('--frames', '--img-size', '--no-step-peak', '--compile',
                   '--peak-tflops', '--out-dir', 'configs/vivit_m2_k400.py'):
        assert option in text


def test_help_imports_nothing_heavy():
    probe = (
        'import importlib.util, sys\n'
        'spec = importlib.util.spec_from_file_location("t", sys.argv[1])\n'
        'tool = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(tool)\n'
        'try:\n    tool.parse_args(["--help"])\n'
        'except SystemExit:\n    pass\n'
        'print([m for m in ("torch", "mmengine", "vivit_mm") '
        'if m in sys.modules])\n')
    out = subprocess.run([sys.executable, '-c', probe, str(TOOL)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == '[]'


def test_option_defaults_are_the_settings_defaults(tool):
    from vivit_bench.settings import Settings
    assert tool.parse_settings([]) == Settings()
    # the variants are the model base configs, the widths the arch zoo
    assert Settings().variants == ('m1', 'm2', 'm3', 'm4')


def test_rss_child_mode_prints_the_step_peak(tmp_path):
    job = json.dumps(dict(cfg=dict(
        type='ViViTM4', arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                                  feedforward_channels=64),
        img_size=16, num_frames=2, patch_size=8), batch=1, threads=1))
    out = subprocess.run([sys.executable, str(TOOL), '--rss-child', job],
                         capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    peak = json.loads(out.strip().splitlines()[-1])['peak']
    assert peak is None or peak >= 0
