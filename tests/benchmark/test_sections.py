"""Report sections: the MFU peak lookup, and one section run on a tiny
model."""
import torch

from vivit_bench.cases import sweep_cases
from vivit_bench.measure import gemm_probe
from vivit_bench.report import Report
from vivit_bench.sections import bf16_peak_flops, sweep_section
from vivit_bench.settings import Context, GemmProbe, Settings


def test_mfu_peak_lookup(monkeypatch):
    s = Settings()
    cuda = torch.device('cuda')
    for name, tflops in (('NVIDIA H100 80GB HBM3', 989.4),
                         ('NVIDIA H100 PCIe', 756.5),
                         ('NVIDIA H200', 989.4),
                         ('NVIDIA A100-SXM4-40GB', 312.0),
                         ('NVIDIA GeForce RTX 3090', None)):
        monkeypatch.setattr(torch.cuda, 'get_device_name',
                            lambda device=None, n=name: n)
        got = bf16_peak_flops(s, cuda)
        assert got == (None if tflops is None else tflops * 1e12), name
    assert bf16_peak_flops(s, torch.device('cpu')) is None
    s = Settings(peak_tflops=100)
    assert bf16_peak_flops(s, torch.device('cpu')) == 1e14


def test_sweep_section_records_and_table():
    s = Settings(arch=dict(embed_dims=32, num_heads=4,
                           feedforward_channels=64), layers=1, patch_size=8,
                 variants=['m2'], frames=[2, 4], img_size=16, batch=1,
                 iters=1, warmup=0, no_step_peak=True, device='cpu')
    ctx = Context(torch.device('cpu'), gemm=GemmProbe(32, *gemm_probe(32)),
                  shape_text='16x16', width_text='D=32')
    rep = Report()
    records = sweep_section(rep, sweep_cases(s, ctx.device), s, ctx)
    assert [(r['name'], r['frames']) for r in records] == [('m2', 2),
                                                           ('m2', 4)]
    assert all(r['peak_bytes'] is None and r['train_s'] > 0
               for r in records)
    assert rep.data['sweep'] == records and len(rep.data['growth']) == 1
    i = rep.lines.index('## Variants against frames')
    assert 'Batch 1, 16x16, D=32.' in rep.lines[i + 2]
    assert rep.lines[i + 4].startswith('| variant | frames | GMACs |')
    row = rep.lines[i + 6].split(' | ')
    assert row[:2] == ['| m2', '2'] and row[-2] == '-'  # no step peak
