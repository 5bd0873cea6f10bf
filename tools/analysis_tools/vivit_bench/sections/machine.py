"""The machine the run is on, and its matrix-multiply rate (the yardstick
of every "util")."""
import os
import platform
import subprocess

import torch

from ..measure import gemm_probe, load_average, matmul_rate
from ..report import Report
from ..settings import Context, GemmProbe, Settings


def cpu_model() -> str:
    """The CPU's model name (``lscpu``), else what :mod:`platform` says."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                model = line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return model


def machine_section(rep: Report, s: Settings, ctx: Context) -> None:
    """``## Machine``: CPU, threads, torch, device (and GPU), Python and
    whether ``--tune-malloc`` took effect."""
    info = dict(cpu=cpu_model(), cpu_count=os.cpu_count(),
                torch=torch.__version__, threads=torch.get_num_threads(),
                device=str(ctx.device), python=platform.python_version(),
                malloc_tuned=ctx.malloc_tuned)
    if ctx.device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(ctx.device)
    rep.data['machine'] = info
    rep.add('## Machine', '')
    rep.table(list(info), [list(info.values())])


def gemm_section(rep: Report, s: Settings, ctx: Context) -> GemmProbe:
    """fp32 GEMM rates at ``--gemm-sizes``; returns the probe of the
    fastest size, which every timing round below also times."""
    load = load_average()
    rates = matmul_rate(s.gemm_sizes, device=ctx.device)
    best = max(rates.values())
    n = max(rates, key=rates.get)
    probe = GemmProbe(n, *gemm_probe(n, ctx.device))
    rep.data['gemm'] = dict(rates={str(k): v for k, v in rates.items()},
                            best=best, probe_n=n, load=load)
    rep.add('## Matrix-multiply rate (fp32, n x n @ n x n, median)', '')
    rep.table(['n', 'GFLOP/s'],
              [[k, f'{r / 1e9:.0f}'] for k, r in rates.items()])
    rep.add(f'Best: **{best / 1e9:.0f} GFLOP/s** (load average '
            f'{load:.2f}). Every timing round below also times one '
            f'{n}^2 GEMM; "util" is a model\'s achieved FLOP/s '
            'over the GEMM rate of the same round (median over rounds), so '
            'background load affects both alike.', '')
    return probe
