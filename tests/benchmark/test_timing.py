"""Timing and memory of benchmark cases: GEMM-relative utilisation,
paired ratios, the step peak measured in a child process."""
import pytest
import torch

from vivit_bench.cases import vivit_case
from vivit_bench.measure import gemm_probe
from vivit_bench.settings import Context, GemmProbe, Settings
from vivit_bench.timing import (GEMM, activation_bytes, paired_ratios,
                                       peak_memory, time_cases, utilisation)

CPU = torch.device('cpu')
TINY = dict(type='ViViTM4', arch=dict(embed_dims=32, num_layers=1,
                                      num_heads=4, feedforward_channels=64),
            img_size=16, num_frames=2, patch_size=8)


def _ctx(n: int = 32) -> Context:
    return Context(CPU, gemm=GemmProbe(n, *gemm_probe(n)))


def test_utilisation_and_paired_ratios_are_per_round():
    ctx = Context(CPU, gemm=GemmProbe(2, print, 100))
    # the model does 50 FLOPs in 1 s and 2 s; the GEMM 100 in 1 s and 4 s
    times = {'m': [1.0, 2.0], GEMM: [1.0, 4.0]}
    assert utilisation(times, 'm', 50, ctx) == pytest.approx(
        (0.5 + 1.0) / 2)
    assert paired_ratios({'a': [2.0, 3.0], 'b': [1.0, 3.0]}, 'a', 'b') == \
        [2.0, 1.0]


def test_time_cases_times_the_probe_and_sets_the_mode():
    s = Settings(iters=2, warmup=0)
    case = vivit_case('m4', TINY, 1, CPU)
    times = time_cases([case], s, _ctx(), train=False)
    assert set(times) == {'m4', GEMM} and len(times['m4']) == 2
    assert not case.model.training
    assert activation_bytes(case) > 0 and case.model.training


def test_no_step_peak_skips_the_measurement():
    case = vivit_case('m4', TINY, 1, CPU)
    assert peak_memory(case, Settings(no_step_peak=True), _ctx()) is None


def test_step_peak_memory_child_process():
    s = Settings(batch=4)
    # large enough that activations are mmap-sized (>= 64 KiB) tensors
    cfg = dict(type='ViViTM4', arch=dict(embed_dims=64, num_layers=1,
                                         num_heads=4,
                                         feedforward_channels=256),
               img_size=64, num_frames=8, patch_size=8)
    case = vivit_case('m4', cfg, s.batch, CPU)
    peak = peak_memory(case, s, Context(CPU))
    if peak is None:
        pytest.skip('peak RSS not measurable here')
    # at least the 4 x 256 x 256 fp32 MLP hidden activations, far below 1 GiB
    assert 4 * 256 * 256 * 4 <= peak < 2**30
