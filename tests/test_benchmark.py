"""Performance paths and the benchmark's measuring logic (no timing
assertions: speed is checked by tools/analysis_tools/benchmark.py).

Budget: under 30 s on 2 cores.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4
from vivit_mm.utils.benchmark import (gemm_probe, matmul_rate,
                                      max_tensor_numel, peak_rss_delta,
                                      saved_activation_bytes,
                                      time_interleaved)

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [ViViTM1, ViViTM2, ViViTM3, ViViTM4]
ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)


def _load_tool():
    path = ROOT / 'tools/analysis_tools/benchmark.py'
    spec = importlib.util.spec_from_file_location('vivit_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Ops(TorchDispatchMode):
    """Names of the aten ops dispatched under it."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.__name__.split('.')[0])
        return func(*args, **(kwargs or {}))


# ------------------------------------------------------ measuring helpers
def test_time_interleaved_rotates_and_counts():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in 'abc'}
    times = time_interleaved(fns, iters=3, warmup=1)
    assert {k: len(v) for k, v in times.items()} == dict(a=3, b=3, c=3)
    assert all(t >= 0 for v in times.values() for t in v)
    # warm-up round, then rounds rotated by one each time
    assert ''.join(calls) == 'abc' + 'abc' + 'bca' + 'cab'
    with pytest.raises(ValueError, match='iters'):
        time_interleaved(fns, iters=0)


def test_matmul_rate_and_probe():
    rates = matmul_rate((64, 128), iters=2, warmup=1)
    assert set(rates) == {64, 128}
    assert all(0 < r < float('inf') for r in rates.values())
    fn, flops = gemm_probe(32)
    assert flops == 2 * 32**3
    assert fn().shape == (32, 32)


def test_saved_activation_bytes_counts_storages_once():
    w = nn.Parameter(torch.randn(16, 16))
    x = torch.randn(4, 16)

    def forward():
        h = (x @ w).exp()       # mm saves x, w (excluded); exp saves h
        a = h[:2].sin()         # sin saves a view of h: same storage
        b = h[2:].sin()
        return (a * b).sum()    # mul saves a and b (4 x 16 floats each)

    got = saved_activation_bytes(forward, exclude=[w, x])
    h_bytes = 4 * 16 * 4
    assert got == h_bytes + 2 * (2 * 16 * 4)
    # nothing is saved without grad
    with torch.no_grad():
        assert saved_activation_bytes(forward, exclude=[w, x]) == 0


def test_max_tensor_numel():
    a = torch.randn(3, 5)
    numel, op = max_tensor_numel(lambda: a.unsqueeze(-1) * a.unsqueeze(1))
    assert numel == 3 * 5 * 5 and 'mul' in op


def test_peak_rss_delta_sees_a_large_allocation():
    n = 64 * 2**20

    def alloc():
        t = torch.ones(n // 4)  # touched: resident
        return t.sum()

    delta = peak_rss_delta(alloc)
    if delta is None:
        pytest.skip('/proc/self/clear_refs not supported')
    assert delta >= 0.9 * n


# ------------------------------------------ memory savers and fused paths
def _tiny(cls, **kw):
    torch.manual_seed(0)
    m = cls(arch=dict(ARCH), img_size=64, num_frames=8, patch_size=8, **kw)
    m.init_weights()
    return m


def test_with_cp_halves_activation_memory_and_keeps_gradients():
    x = torch.randn(1, 3, 8, 64, 64)
    grads, saved = [], []
    for cp in (False, True):
        m = _tiny(ViViTM1, with_cp=cp).train()
        params = list(m.parameters())
        saved.append(saved_activation_bytes(lambda: m(x),
                                            exclude=params + [x]))
        m(x).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]))
    assert 0 < saved[1] <= 0.5 * saved[0]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('cls', VARIANTS, ids=lambda c: c.__name__)
def test_fused_path_never_materialises_an_attention_matrix(cls):
    """Forward and backward of the default (fused SDPA) path: no softmax or
    batched matmul is dispatched and no tensor reaches N x N elements (N =
    all 4 x 64 tokens), while the explicit path does dispatch them, so the
    check can fail."""
    x = torch.randn(1, 3, 8, 64, 64)
    m = _tiny(cls).train()
    n = m.num_temporal_tokens * m.num_spatial_tokens

    def step():
        m(x).sum().backward()

    with _Ops() as mode:
        step()
    assert not {'_softmax', '_safe_softmax', 'bmm'} & mode.ops
    assert any('scaled_dot_product' in op for op in mode.ops)
    numel, op = max_tensor_numel(step)
    assert numel < n * n, op

    explicit = _tiny(cls, fused_attn=False).train()
    with _Ops() as mode:
        explicit(x).sum().backward()
    assert {'_softmax', 'bmm'} <= mode.ops
    if cls is ViViTM1:
        numel, _ = max_tensor_numel(lambda: explicit(x).sum().backward())
        assert numel >= ARCH['num_heads'] * n * n


@pytest.mark.parametrize('cls', VARIANTS, ids=lambda c: c.__name__)
def test_bf16_autocast_forward_and_backward(cls):
    x = torch.randn(2, 3, 8, 64, 64)
    m = _tiny(cls).train()
    ref = m(x)
    dtypes = []
    m.layers[0].mlp.fc1.register_forward_hook(
        lambda mod, inp, out: dtypes.append(out.dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = m(x)
    assert dtypes == [torch.bfloat16]  # the MLP ran in bf16
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 5e-2
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters()
               if p.grad is not None)
    assert m.patch_embed.projection.weight.grad is not None


# ---------------------------------------------------------------- the tool
def test_benchmark_tool_end_to_end(tmp_path):
    pytest.importorskip('matplotlib')
    tool = _load_tool()
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
    data = json.loads((tmp_path / 'benchmark.json').read_text())
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


def test_benchmark_tool_on_a_config(tmp_path):
    tool = _load_tool()
    tool.main([
        str(ROOT / 'configs/vivit_m4_k400.py'), '--arch', '32,4,64',
        '--layers', '1', '--frames', '2', '--img-size', '32', '--batch', '1',
        '--iters', '1', '--warmup', '0', '--gemm-sizes', '64', '--no-compare',
        '--no-cp', '--no-step-peak', '--threads', '1', '--out-dir',
        str(tmp_path)
    ])
    data = json.loads((tmp_path / 'benchmark.json').read_text())
    (rec, ) = data['sweep']
    assert (rec['name'], rec['frames']) == ('ViViTM4', 2)
    assert [r['variant'] for r in data['amp']['results']] == ['ViViTM4']
    assert data['amp']['results'][0]['rel_err'] < 5e-2
    # no datasheet peak for a CPU: no MFU
    assert data['amp']['bf16_peak'] is None
    assert 'bf16_train_mfu' not in data['amp']['results'][0]


def test_mfu_peak_lookup(monkeypatch):
    tool = _load_tool()
    args = tool.parse_args([])
    cuda = torch.device('cuda')
    for name, tflops in (('NVIDIA H100 80GB HBM3', 989.4),
                         ('NVIDIA H100 PCIe', 756.5),
                         ('NVIDIA H200', 989.4),
                         ('NVIDIA A100-SXM4-40GB', 312.0),
                         ('NVIDIA GeForce RTX 3090', None)):
        monkeypatch.setattr(torch.cuda, 'get_device_name',
                            lambda device=None, n=name: n)
        got = tool.bf16_peak_flops(args, cuda)
        assert got == (None if tflops is None else tflops * 1e12), name
    assert tool.bf16_peak_flops(args, torch.device('cpu')) is None
    args = tool.parse_args(['--peak-tflops', '100'])
    assert tool.bf16_peak_flops(args, torch.device('cpu')) == 1e14
    with pytest.raises(SystemExit):
        tool.parse_args(['--peak-tflops', '0'])


def test_step_peak_memory_child_process():
    tool = _load_tool()
    args = tool.parse_args(['--batch', '4'])
    # large enough that activations are mmap-sized (>= 64 KiB) tensors
    cfg = dict(type='ViViTM4', arch=dict(embed_dims=64, num_layers=1,
                                         num_heads=4,
                                         feedforward_channels=256),
               img_size=64, num_frames=8, patch_size=8)
    case = tool.vivit_case('m4', cfg, args, torch.device('cpu'))
    peak = tool.peak_memory(case, 'cpu', args)
    if peak is None:
        pytest.skip('peak RSS not measurable here')
    # at least the 4 x 256 x 256 fp32 MLP hidden activations, far below 1 GiB
    assert 4 * 256 * 256 * 4 <= peak < 2**30


def test_benchmark_tool_rejects_bad_options():
    tool = _load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(['--frames', '0'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--arch', 'xl'])
    assert tool.parse_arch('l') == dict(embed_dims=1024, num_heads=16,
                                        feedforward_channels=4096)


# ----------------------------------------------------------------- configs
def test_memory_and_speed_configs():
    from mmengine import Config
    amp = Config.fromfile(ROOT / 'configs/vivit_m2_k400_amp.py')
    assert amp.optim_wrapper.type == 'AmpOptimWrapper'
    assert amp.optim_wrapper.dtype == 'bfloat16'
    assert amp.optim_wrapper.optimizer.type == 'SGD'  # inherited
    cp = Config.fromfile(ROOT / 'configs/vivit_m1_k400_cp.py')
    assert cp.model.backbone.type == 'ViViTM1' and cp.model.backbone.with_cp
    compiled = Config.fromfile(ROOT / 'configs/vivit_m2_k400_compile.py')
    assert compiled.compile is True
    assert compiled.model.backbone.type == 'ViViTM2'
    # the hook that lets compile trace paramwise_cfg param groups: added
    # once with compile, never without
    from vivit_mm.engine.hooks import add_plain_param_groups_hook
    before = [h['type'] for h in compiled.custom_hooks]
    for _ in range(2):
        add_plain_param_groups_hook(compiled)
    assert [h['type'] for h in compiled.custom_hooks] == \
        before + ['PlainParamGroupsHook']
    add_plain_param_groups_hook(cp)
    assert 'PlainParamGroupsHook' not in [h['type'] for h in
                                          cp.get('custom_hooks', [])]


def test_tune_malloc_stops_page_faulting_reused_buffers():
    """In a fresh process, a forward-like pattern (five 16 MiB buffers alive
    at once, then all freed) is page-faulted in again every round when glibc
    serves large blocks with mmap (its initial 128 KiB threshold, pinned so
    that its dynamic adjustment cannot make the check flaky), and is reused
    once tuned."""
    import subprocess
    import sys
    code = '''
import resource, sys, torch
from vivit_mm.utils.benchmark import tune_malloc
if sys.argv[1] == 'tuned':
    assert tune_malloc()
else:
    import ctypes
    ctypes.CDLL('libc.so.6').mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
def round():
    bufs = [torch.ones(4 << 20) for _ in range(5)]
    return sum(b[0] for b in bufs)
round()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
'''
    faults = {}
    for mode in ('default', 'tuned'):
        out = subprocess.run([sys.executable, '-c', code, mode],
                             capture_output=True, text=True, check=True)
        faults[mode] = int(out.stdout.split()[-1])
    pages = 10 * 5 * (16 << 20) // 4096
    assert faults['default'] > pages // 2
    assert faults['tuned'] < pages // 10
