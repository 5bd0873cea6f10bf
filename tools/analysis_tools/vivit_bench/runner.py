"""One benchmark run: every section the settings ask for, in report order,
written to ``benchmark.md``, ``benchmark.json`` and ``benchmark.png``."""
from dataclasses import replace
from pathlib import Path

import torch

from .cases import config_backbone, describe, sweep_cases
from .measure import tune_malloc
from .report import Report
from .sections import (amp_section, checkpoint_section, compare_section,
                       compile_section, explicit_memory_section,
                       gemm_section, machine_section, sweep_section)
from .settings import Context, Settings


def _setup(s: Settings) -> Context:
    """Allocator and threads as asked; the context of the run."""
    malloc_tuned = tune_malloc() if s.tune_malloc else False
    if s.threads:
        torch.set_num_threads(s.threads)
    return Context(torch.device(s.device), malloc_tuned)


def _sweep(rep: Report, s: Settings, ctx: Context, out_dir: Path) -> Context:
    """The sweep (and the plot where it has several frame counts); returns
    the context with the swept models' shape and width."""
    cases = sweep_cases(s, ctx.device)
    shape, width = describe(next(iter(cases.values()))[0].model)
    ctx = replace(ctx, shape_text=shape, width_text=width)
    records = sweep_section(rep, cases, s, ctx)
    if s.config is None and 'm1' in s.variants:
        explicit_memory_section(rep, s, ctx)
    rep.data['title'] = f'{width}, {shape}, batch {s.batch}'
    if len({r['frames'] for r in records}) > 1:
        from .plot import plot
        plot(rep.data, out_dir / 'benchmark.png')
        rep.add(f'Plot: `{out_dir / "benchmark.png"}`', '')
    return ctx


def run(s: Settings, command: str) -> Report:
    """Run the benchmark ``s`` describes and write its files to
    ``s.out_dir``.

    Args:
        s (Settings): The run.
        command (str): The command line, quoted at the top of the report.

    Returns:
        Report: The markdown lines and JSON data written.
    """
    ctx = _setup(s)
    out_dir = Path(s.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    rep = Report()
    rep.add('# vivit_mm benchmark', '', f'Command: `{command}`', '')
    machine_section(rep, s, ctx)
    ctx = replace(ctx, gemm=gemm_section(rep, s, ctx))
    ctx = _sweep(rep, s, ctx, out_dir)
    if not s.no_compare:
        compare_section(rep, s, ctx)
    if not s.no_cp and not s.no_train:
        checkpoint_section(rep, s, ctx)
    if not s.no_amp:
        amp_section(rep, s, ctx)
    if s.compile:
        compile_section(rep, s, ctx)
    rep.data['args'] = dict(s.as_dict(), **ctx.as_dict(),
                            config_backbone=config_backbone(s))
    rep.write(out_dir / 'benchmark.md', out_dir / 'benchmark.json')
    print(f'Wrote {out_dir}/benchmark.{{md,json,png}}')
    return rep


__all__ = ['run']
