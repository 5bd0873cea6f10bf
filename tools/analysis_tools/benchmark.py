#!/usr/bin/env python
"""Benchmark ViViT backbones: speed, FLOP/s, memory; against HuggingFace
ViViT and MMAction2's TimeSformer, in one run on one machine.

Measures, for the four variants (or one config's backbone) and each frame
count: forward and forward+backward clips/s, achieved FLOP/s as a fraction
of this machine's measured fp32 matrix-multiply rate, training activation
memory (bytes autograd saves for backward) and peak memory; then, side by
side and interleaved call by call, Model 1 against HuggingFace's
``VivitModel`` and Model 3 (uniform frame sampling) against MMAction2's
``TimeSformer`` (divided space-time); activation checkpointing; bf16
autocast; optionally ``torch.compile``. Writes ``benchmark.md``,
``benchmark.json`` and ``benchmark.png`` to ``--out-dir``.

Examples:
    # the numbers in docs/performance.md (about 20 minutes on 2 cores)
    python tools/analysis_tools/benchmark.py --frames 4 8 16 32 \\
        --img-size 160 --batch 2 --layers 4 --compare-frames 8 \\
        --cp-frames 16 --cp-img-size 224 --iters 7 --compile \\
        --out-dir work_dirs/benchmark
    # one config's backbone at its own input shape
    python tools/analysis_tools/benchmark.py configs/vivit_m2_k400.py \\
        --layers 4 --no-compare --no-cp
"""
import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    from vivit_bench.report import Report
    from vivit_bench.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
# The measuring code (vivit_bench) lives beside this script.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The command line is parsed before torch and vivit_mm are imported, so that
# --help and mistyped options answer at once; --variants and --arch are
# checked against the model base configs and the arch zoo when the
# settings are made (vivit_bench.settings).


def build_parser() -> argparse.ArgumentParser:
    """The command line (its options are the fields of
    :class:`~vivit_bench.settings.Settings`)."""
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('Examples:')[1])
    p.add_argument('config', nargs='?',
                   help='benchmark this config\'s backbone instead of the '
                   'four variants')
    p.add_argument('--variants', nargs='+', default=None,
                   help='variants to sweep, named by their model base '
                   'configs configs/_base_/models/vivit_<variant>.py '
                   '(default: all, m1 m2 m3 m4)')
    p.add_argument('--device', default='auto',
                   help='cpu, cuda, cuda:N or auto (GPU when present)')
    p.add_argument('--frames', type=int, nargs='+', default=None,
                   help='frame counts to sweep (default: 4 8 16 32; with a '
                   'config, the config\'s)')
    p.add_argument('--img-size', type=int, default=None,
                   help='default: 160; with a config, the config\'s')
    p.add_argument('--patch-size', type=int, default=None,
                   help='default: the config\'s (16)')
    p.add_argument('--tubelet-size', type=int, default=None,
                   help='default: the config\'s (2)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--layers', type=int, default=4,
                   help='encoder depth (0: keep the config\'s)')
    p.add_argument('--arch', default=None,
                   help='width: an arch of the backbones (b, l, h) or '
                   '"embed_dims,num_heads,mlp" '
                   '(default: the config\'s, ViViT-B for the variants)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--iters', type=int, default=5,
                   help='interleaved timing rounds (medians reported)')
    p.add_argument('--threads', type=int, default=0,
                   help='torch CPU threads (0: torch default)')
    p.add_argument('--gemm-sizes', type=int, nargs='+',
                   default=[2048, 3072, 4096])
    p.add_argument('--no-train', action='store_true',
                   help='skip forward+backward timing')
    p.add_argument('--no-step-peak', action='store_true',
                   help='skip the per-case peak memory of a training step '
                   '(on CPU a child process per case)')
    p.add_argument('--no-compare', action='store_true',
                   help='skip HuggingFace ViViT and TimeSformer')
    p.add_argument('--compare-frames', type=int, default=8,
                   help='frames for the comparisons, bf16 and compile')
    p.add_argument('--no-cp', action='store_true',
                   help='skip the activation checkpointing section')
    p.add_argument('--cp-frames', type=int, default=16)
    p.add_argument('--cp-img-size', type=int, default=224)
    p.add_argument('--no-amp', action='store_true',
                   help='skip the bf16 autocast section')
    p.add_argument('--compile', action='store_true',
                   help='also time torch.compile\'d backbones (slow to '
                   'compile on CPU)')
    p.add_argument('--tune-malloc', action='store_true',
                   help='keep freed memory in the process (glibc mallopt) '
                   'so that activations are not page-faulted in again '
                   'every pass; applies to every model alike')
    p.add_argument('--peak-tflops', type=float, default=None,
                   help='dense bf16 peak of the GPU from its datasheet, for '
                   'MFU (default: known for A100/H100/H200, else no MFU)')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The parsed command line, unchecked (imports nothing heavy)."""
    return build_parser().parse_args(argv)


def parse_settings(argv: Optional[Sequence[str]] = None) -> 'Settings':
    """The :class:`~vivit_bench.settings.Settings` of a command line;
    exits with a usage error naming the bad option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from vivit_bench.settings import Settings
    try:
        return Settings.from_args(args)
    except ValueError as e:
        parser.error(str(e))


def main(argv: Optional[Sequence[str]] = None) -> Optional['Report']:
    """Run the benchmark and return its report (or, with ``--rss-child
    JOB``, print one peak-RSS measurement of
    :mod:`vivit_bench.rss_child` and return None)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['--rss-child']:
        from vivit_bench import rss_child
        rss_child.run(argv[1])
        return None
    settings = parse_settings(argv)
    from vivit_mm.utils.optional import require_or_exit
    if not settings.no_compare:  # HuggingFace's VivitModel is compared
        require_or_exit('transformers', purpose='benchmark.py (without '
                        '--no-compare)')
    from vivit_bench.runner import run
    return run(settings, 'python tools/analysis_tools/benchmark.py '
               + ' '.join(argv))


if __name__ == '__main__':
    main()
