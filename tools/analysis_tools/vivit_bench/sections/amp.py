"""bf16 autocast: accuracy against fp32, speed, utilisation against the
measured bf16 GEMM and, on a known GPU, MFU."""
import math
from typing import Callable, Optional

import torch

from ..cases import Case, section_cfgs, section_shape, vivit_case
from ..measure import load_average, matmul_rate, median
from ..report import Report
from ..settings import Context, Settings
from ..timing import time_cases

#: Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, in
#: TFLOP/s, by a part of the name torch.cuda.get_device_name reports; first
#: match wins. The denominator of MFU; --peak-tflops overrides it.
BF16_PEAK_TFLOPS = (('H200', 989.4), ('H100 PCIe', 756.5),
                    ('H100 NVL', 835.5), ('H100', 989.4), ('A100', 312.0))


def bf16_peak_flops(s: Settings, device: torch.device) -> Optional[float]:
    """The GPU's datasheet bf16 peak (FLOP/s) for MFU, or None."""
    if s.peak_tflops is not None:
        return s.peak_tflops * 1e12
    if torch.device(device).type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for part, tflops in BF16_PEAK_TFLOPS:
        if part.lower() in name.lower():
            return tflops * 1e12
    return None


def autocast_forward(dev_type: str) -> Callable:
    """``forward(model, x)`` under bf16 autocast on ``dev_type``."""
    def fwd(m, inp):
        with torch.autocast(dev_type, dtype=torch.bfloat16):
            return m(inp)
    return fwd


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||``."""
    return ((out - ref).norm() / ref.norm()).item()


def _amp_record(v: str, c: Case, s: Settings, ctx: Context,
                bf16_gemm: float, peak: Optional[float]) -> dict:
    """Error, fp32/bf16 times, bf16 util (and MFU) of one backbone."""
    c.model.eval()
    amp = Case(f'{v} bf16', c.model, c.x,
               forward=autocast_forward(ctx.device.type), macs=c.macs)
    with torch.no_grad():
        ref = c.forward().float()
        out = amp.forward().float()
    fwd = time_cases([c, amp], s, ctx, train=False)
    rec = dict(variant=v, rel_err=rel_err(out, ref),
               fp32_fwd_s=median(fwd[c.name]),
               bf16_fwd_s=median(fwd[amp.name]))
    if not s.no_train:
        trn = time_cases([c, amp], s, ctx, train=True)
        rec.update(fp32_train_s=median(trn[c.name]),
                   bf16_train_s=median(trn[amp.name]))
    train_flops = 6 * c.macs / rec.get('bf16_train_s', math.nan)
    rec['bf16_fwd_util'] = 2 * c.macs / rec['bf16_fwd_s'] / bf16_gemm
    rec['bf16_train_util'] = train_flops / bf16_gemm
    if peak is not None:
        rec['bf16_train_mfu'] = train_flops / peak
    return rec


def _amp_row(rec: dict, s: Settings, peak: Optional[float]) -> list:
    b = s.batch
    return ([rec['variant'], f'{rec["rel_err"]:.1e}',
             f'{b / rec["fp32_fwd_s"]:.2f}', f'{b / rec["bf16_fwd_s"]:.2f}',
             f'{rec["bf16_fwd_util"]:.0%}',
             f'{b / rec.get("fp32_train_s", math.nan):.2f}',
             f'{b / rec.get("bf16_train_s", math.nan):.2f}',
             f'{rec["bf16_train_util"]:.0%}'] +
            ([f'{rec["bf16_train_mfu"]:.1%}'] if peak else []))


def _describe(s: Settings, gemm_n: int, bf16_gemm: float,
              peak: Optional[float]) -> str:
    text = (f'{section_shape(s)}, batch {s.batch}. rel err = ||bf16 - fp32||'
            ' / ||fp32|| of the features. bf16 util = achieved FLOP/s over '
            f'this run\'s bf16 {gemm_n}^2 GEMM rate '
            f'({bf16_gemm / 1e9:.0f} GFLOP/s; medians, not paired).')
    if peak:
        text += (' MFU = model FLOPs of a training step (6 x MACs) per '
                 'second over the datasheet bf16 peak '
                 f'({peak / 1e12:.1f} TFLOP/s); the step is forward + '
                 'backward without the optimizer update.')
    return text


def amp_section(rep: Report, s: Settings, ctx: Context) -> None:
    """``## bf16 autocast``: the config's backbone, or each variant at
    ``--compare-frames``."""
    dev_type = ctx.device.type
    if dev_type == 'cuda' and not torch.cuda.is_bf16_supported():
        rep.add('## bf16 autocast', '', 'Not supported on this GPU.', '')
        return
    load = load_average()
    bf16_gemm = max(matmul_rate([ctx.gemm.n], device=ctx.device,
                                dtype=torch.bfloat16).values())
    peak = bf16_peak_flops(s, ctx.device)
    data = []
    for v, cfg in section_cfgs(s):
        c = vivit_case(v, cfg, s.batch, ctx.device)
        data.append(_amp_record(v, c, s, ctx, bf16_gemm, peak))
        del c
    rep.data['amp'] = dict(bf16_gemm=bf16_gemm, bf16_peak=peak, load=load,
                           results=data)
    rep.add(f'## bf16 autocast (`torch.autocast("{dev_type}", '
            'dtype=torch.bfloat16)`)', '',
            _describe(s, ctx.gemm.n, bf16_gemm, peak), '')
    rep.table(['variant', 'rel err', 'fp32 fwd clips/s', 'bf16 fwd clips/s',
               'bf16 fwd util', 'fp32 train clips/s', 'bf16 train clips/s',
               'bf16 train util'] + (['bf16 train MFU'] if peak else []),
              [_amp_row(r, s, peak) for r in data])
