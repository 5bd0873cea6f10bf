#!/usr/bin/env python
"""Print GFLOPs (multiply-accumulates, as the ViViT paper counts them) and
parameters of a config's model for one view at its input shape.

Usage:
    python tools/analysis_tools/get_flops.py CONFIG [--cfg-options k=v ...]
    python tools/analysis_tools/get_flops.py --paper-table
"""
import argparse
from pathlib import Path

from mmengine.config import DictAction

ROOT = Path(__file__).resolve().parents[2]

# ViViT paper, Table 2 (ViViT-B/16x2, 32x224x224, Kinetics-400 head).
PAPER_TABLE2 = [
    ('Model 1: spatio-temporal attention', 'vivit_m1', {}, 455.2, 88.9),
    ('Model 2: factorised encoder', 'vivit_m2', {}, 284.4, 115.1),
    ('Model 3: factorised self-attention', 'vivit_m3', {}, 372.3, 117.3),
    ('Model 4: factorised dot-product', 'vivit_m4', {}, 277.1, 88.9),
    ('Model 2, average-pool baseline (L_t=0)', 'vivit_m2',
     {'num_temporal_layers': 0}, 283.9, 86.7),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument('--paper-table', action='store_true',
                        help='count the four ViViT-B/16x2 variants and '
                        'compare with the paper\'s Table 2')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if not args.config and not args.paper_table:
        parser.error('give a CONFIG or --paper-table')
    return args


def paper_table() -> str:
    from mmengine.config import Config

    from vivit_mm.utils import recognizer_complexity
    rows = ['| Model | GFLOPs (ours) | GFLOPs (paper) | Params M (ours) '
            '| Params M (paper) |', '|---|---|---|---|---|']
    for name, base, backbone_opts, gflops, params in PAPER_TABLE2:
        cfg = Config.fromfile(ROOT / f'configs/_base_/models/{base}.py')
        cfg.model.backbone.update(backbone_opts)
        macs, n, _ = recognizer_complexity(cfg.model)
        rows.append(f'| {name} | {macs / 1e9:.1f} | {gflops} | '
                    f'{n / 1e6:.2f} | {params} |')
    return '\n'.join(rows)


def format_macs(macs: int) -> str:
    """Multiply-accumulates with enough digits for any model: GFLOPs with one
    decimal from 1 GFLOP on, MFLOPs with three significant digits below."""
    if macs >= 1e9:
        return f'GFLOPs (multiply-accumulates): {macs / 1e9:.1f}'
    return f'MFLOPs (multiply-accumulates): {macs / 1e6:.3g}'


def main(argv=None):
    args = parse_args(argv)
    if args.paper_table:
        print('ViViT-B/16x2, 32 frames at 224x224, 400 classes; FLOPs are '
              'multiply-accumulates per view.\n')
        print(paper_table())
        return
    from mmengine.config import Config

    from vivit_mm.utils import recognizer_complexity
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    macs, params, shape = recognizer_complexity(cfg.model)
    print(f'Config: {args.config}')
    print(f'Input shape (one view): {tuple(shape)}')
    print(format_macs(macs))
    print(f'Params: {params / 1e6:.2f} M')


if __name__ == '__main__':
    main()
