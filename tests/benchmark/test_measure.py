"""The measuring helpers of ``vivit_bench.measure`` (no timing
assertions: speed is checked by tools/analysis_tools/benchmark.py)."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vivit_bench.measure import (gemm_probe, load_average,
                                        matmul_rate, max_tensor_numel,
                                        median, model_bytes, peak_rss_delta,
                                        saved_activation_bytes,
                                        time_interleaved)

ROOT = Path(__file__).resolve().parents[2]


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


def test_median_load_average_and_model_bytes():
    assert median([3.0, 1.0, 2.0]) == 2.0
    load = load_average()
    assert load >= 0 or math.isnan(load)
    # weight and bias, running mean and var (fp32), the int64 step count
    assert model_bytes(nn.BatchNorm1d(4)) == 2 * 4 * 4 + 2 * 4 * 4 + 8


def test_tune_malloc_stops_page_faulting_reused_buffers():
    """In a fresh process, a forward-like pattern (five 16 MiB buffers alive
    at once, then all freed) is page-faulted in again every round when glibc
    serves large blocks with mmap (its initial 128 KiB threshold, pinned so
    that its dynamic adjustment cannot make the check flaky), and is reused
    once tuned."""
    code = '''
import resource, sys, torch
from vivit_bench.measure import tune_malloc
if sys.argv[1] == 'tuned':
    assert tune_malloc()
else:
    import ctypes
    ctypes.CDLL('libc.so.6').mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
def round():
    bufs = [torch.ones(4 << 20) for _ in range(5)]
    return sum(b[0] for b in bufs)
round(); round()  # the heap of a fresh interpreter settles in two rounds
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
'''
    faults = {}
    for mode in ('default', 'tuned'):
        out = subprocess.run([sys.executable, '-c', code, mode],
                             capture_output=True, text=True, check=True,
                             cwd=ROOT / 'tools' / 'analysis_tools')
        faults[mode] = int(out.stdout.split()[-1])
    pages = 10 * 5 * (16 << 20) // 4096
    assert faults['default'] > pages // 2
    assert faults['tuned'] < pages // 10
