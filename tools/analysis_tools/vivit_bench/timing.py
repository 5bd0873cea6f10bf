"""Measuring :class:`~vivit_bench.cases.Case` objects: interleaved
timing with the GEMM probe, utilisation, activation bytes and the peak
memory of a training step."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

from .cases import Case
from .measure import (cuda_peak_bytes, median, saved_activation_bytes,
                      time_interleaved)
from .settings import Context, Settings

#: Name of the GEMM probe among the timed callables.
GEMM = 'fp32 GEMM probe'
#: Put on the child's ``PYTHONPATH``: ``tools/analysis_tools`` (this
#: package) and the repository root (``vivit_mm``, when not installed).
CHILD_PATH = (Path(__file__).resolve().parents[1],
              Path(__file__).resolve().parents[3])


def time_cases(cases: List[Case], s: Settings, ctx: Context, train: bool
               ) -> Dict[str, List[float]]:
    """Interleaved timing of the cases' inference or training steps, with
    the GEMM probe (``ctx.gemm``) in every round.

    Returns:
        dict: Case name (and :data:`GEMM`) -> ``s.iters`` durations (s).
    """
    for c in cases:
        c.model.train(train)
    fns = {c.name: (c.train_step if train else c.infer) for c in cases}
    fns[GEMM] = ctx.gemm.fn
    return time_interleaved(fns, iters=s.iters, warmup=s.warmup,
                            device=ctx.device)


def utilisation(times: Dict[str, List[float]], name: str, flops: float,
                ctx: Context) -> float:
    """Achieved FLOP/s over the matrix-multiply rate of the same round
    (median over rounds)."""
    return median((flops / t) / (ctx.gemm.flops / g)
                  for t, g in zip(times[name], times[GEMM]))


def paired_ratios(times: Dict[str, List[float]], slow: str,
                  fast: str) -> List[float]:
    """Per round ``time(slow) / time(fast)`` (> 1: ``fast`` is faster)."""
    return [a / b for a, b in zip(times[slow], times[fast])]


def activation_bytes(case: Case) -> int:
    """Bytes autograd saves for backward in a training-mode forward pass
    (parameters and input excluded)."""
    case.model.train()
    return saved_activation_bytes(
        case.forward, exclude=list(case.model.parameters()) + [case.x])


def peak_memory(case: Case, s: Settings, ctx: Context) -> Optional[int]:
    """Peak memory of one training step (activations, gradients and
    temporaries), or None with ``--no-step-peak`` or when the child fails.

    GPU: growth of ``torch.cuda.max_memory_allocated``. CPU: peak RSS growth
    of the step in a fresh process (:mod:`vivit_bench.rss_child`),
    since in this process the allocator keeps memory freed by earlier cases.
    """
    case.model.train()
    if s.no_step_peak:
        return None
    if ctx.device.type == 'cuda':
        return cuda_peak_bytes(case.train_step, ctx.device)
    job = json.dumps(dict(cfg=case.cfg, batch=s.batch,
                          threads=torch.get_num_threads()))
    return child_peak(job)


def child_peak(job: str) -> Optional[int]:
    """Run :mod:`vivit_bench.rss_child` on ``job`` (JSON); its
    ``peak``, or None (with the child's error printed) when it fails."""
    path = os.pathsep.join(
        p for p in (*map(str, CHILD_PATH), os.environ.get('PYTHONPATH'))
        if p)
    proc = subprocess.run(
        [sys.executable, '-m', 'vivit_bench.rss_child', job],
        capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=path))
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        print(f'peak RSS child failed: {proc.stderr[-2000:]}')
        return None
    return json.loads(lines[-1])['peak']


__all__ = ['GEMM', 'time_cases', 'utilisation', 'paired_ratios',
           'activation_bytes', 'peak_memory', 'child_peak']
