#!/usr/bin/env python
"""Plan the memory of one training step of a config before launching it.

Counts parameters, gradients, optimizer states, the activations kept for
backward, the transient peak of the backward and the step's peak (MiB), by
running the step on fake tensors (nothing is allocated; seconds for
ViViT-L). With --gpu-mem, the largest batch per GPU of each size, with and
without activation checkpointing (with_cp). docs/memory.md explains the
numbers and how well they agree with measured peaks.

Usage:
    python tools/analysis_tools/plan_memory.py CONFIG [--batch-size N]
        [--device cpu|cuda] [--precision fp32|bf16] [--with-cp]
        [--gpu-mem GIB ...] [--json] [--measure] [--cfg-options k=v ...]
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

ASSUMPTIONS_CUDA = [
    'Every tensor is rounded up to the CUDA caching allocator\'s 512-byte '
    'blocks (what torch.cuda.max_memory_allocated counts).',
    'cuBLAS workspace: 32 MiB (PyTorch\'s default per stream on Hopper; '
    '8.1 MiB on older GPUs).',
    'The CUDA context (driver, kernels, cuBLAS/cuDNN: about 0.5-1 GiB, by '
    'GPU and versions) is not in the peak; --gpu-mem leaves --reserve GiB '
    'for it.',
    'Reserved memory exceeds allocated by fragmentation: --gpu-mem fits the '
    'peak times 1 + --headroom into the rest.',
    'Optimizers run their foreach implementation (torch\'s default on CUDA) '
    'unless the config chooses.',
    'Attention is counted as the CPU\'s fused flash kernel saves and '
    'allocates it; CUDA\'s flash/memory-efficient kernels save the same '
    'tensors (plus a random-number state), their backward scratch differs.',
    'Autocast is counted with the CPU\'s op lists; for these models CUDA\'s '
    'agree (matmuls, convolutions, attention in bf16; LayerNorm on the fp32 '
    'residual stream).',
    'One process: DistributedDataParallel adds its gradient buckets (about '
    'one more copy of the gradients) unless gradient_as_bucket_view=True.',
]
ASSUMPTIONS_ALL = [
    'Left out: batch blending (mixup/cutmix: a same-sized batch), the '
    'head\'s top-k accuracy ([B, classes]), data loader workers (host).',
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='clips per device (default: the config\'s '
                        'train_dataloader.batch_size)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='plan for this device (cuda adds allocator '
                        'blocks and the cuBLAS workspace)')
    parser.add_argument('--precision', choices=['fp32', 'bf16'],
                        default=None, help='autocast precision (default: '
                        'the config\'s optim_wrapper)')
    parser.add_argument('--with-cp', action='store_true',
                        help='plan with activation checkpointing (default: '
                        'the config\'s backbone.with_cp)')
    parser.add_argument('--gpu-mem', type=float, nargs='+', metavar='GIB',
                        help='also give the largest batch per GPU of these '
                        'sizes (GiB, as nvidia-smi reports the total), with '
                        'and without with_cp')
    parser.add_argument('--reserve', type=float, default=1.0, metavar='GIB',
                        help='GPU memory left for the CUDA context '
                        '(default: 1)')
    parser.add_argument('--headroom', type=float, default=0.1,
                        help='allocator fragmentation allowed for with '
                        '--gpu-mem, a fraction of the peak (default: 0.1)')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object, in bytes')
    parser.add_argument('--measure', action='store_true',
                        help='also measure the step in a fresh process: on '
                        'cpu its peak RSS increase, on cuda '
                        'torch.cuda.max_memory_allocated (fp32 or bf16)')
    parser.add_argument('--threads', type=int, default=2,
                        help='CPU threads of --measure (default: 2)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.gpu_mem and min(args.gpu_mem) <= 0:
        parser.error('--gpu-mem sizes must be positive GiB')
    if args.reserve < 0 or args.headroom < 0:
        parser.error('--reserve and --headroom must be >= 0')
    return args


def load_config(path, options):
    from mmengine.config import Config

    import vivit_mm  # noqa: F401  (registers the modules)
    if not osp.isfile(path):
        raise SystemExit(f'plan_memory.py: no config file {path!r}.')
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    for key in ('model', 'optim_wrapper'):
        if not cfg.get(key):
            raise SystemExit(f'plan_memory.py: {path} has no {key}; give a '
                             'training config (with model and optim_wrapper).')
    return cfg


def text_report(args, plan, optimizer_name, batches, measured) -> str:
    from vivit_cli.memory_plan import mib
    cp = 'on' if plan.with_cp else 'off'
    lines = [f'Config: {args.config}',
             f'One training step: batch {plan.batch_size} per device, '
             f'{plan.precision}, with_cp {cp}, planned for {plan.device} '
             '(counted on fake tensors; nothing allocated)', '',
             f'| {"component":<44} | {"MiB":>10} |',
             f'|{"-" * 46}|{"-" * 12}|']

    def row(name, n):
        lines.append(f'| {name:<44} | {mib(n):>10} |')

    row('parameters and buffers', plan.params + plan.buffers)
    row(f'optimizer states ({optimizer_name})', plan.optimizer)
    row('input batch (uint8 clips)', plan.inputs)
    row('activations kept for backward', plan.activations)
    row('backward transient (gradients, temporaries)',
        plan.backward_transient)
    if plan.workspace:
        row('cuBLAS workspace', plan.workspace)
    row(f'peak (in the {plan.peak_phase})', plan.peak)
    lines += ['', 'Also: gradients at the end of the backward '
              f'{mib(plan.gradients)} MiB; peak of the forward '
              f'{mib(plan.forward_peak)}, of the optimizer step '
              f'{mib(plan.optimizer_peak)} MiB.']
    if measured is not None and plan.device == 'cuda':
        inc, top = measured['increase'], measured['max_allocated']
        lines += ['', f'Measured on {measured["gpu"]} (fresh process): '
                  f'torch.cuda.max_memory_allocated {mib(top)} MiB, planned '
                  f'peak {mib(plan.peak)} MiB ({plan.peak / top - 1:+.1%}); '
                  f'over the memory allocated before the step {mib(inc)} '
                  f'MiB, planned {mib(plan.increase)} MiB '
                  f'({plan.increase / inc - 1:+.1%}); max reserved '
                  f'{mib(measured["max_reserved"])} MiB.']
    elif measured is not None and measured['increase']:
        inc = measured['increase']
        lines += ['', 'Measured on this CPU (fresh process, glibc mmap '
                  'threshold 64 KiB): peak RSS increase over the resident '
                  f'set before the step {mib(inc)} MiB; planned '
                  f'{mib(plan.increase)} MiB ({plan.increase / inc - 1:+.1%}'
                  ').']
    if batches:
        lines += ['', f'Largest batch per GPU ({plan.precision}; planned, '
                  'not measured; reserve '
                  f'{args.reserve:g} GiB, headroom {args.headroom:.0%}):', '',
                  '| GPU memory (GiB) | without with_cp | with with_cp |',
                  '|---|---|---|']
        for gib, n in batches.items():
            lines.append(f'| {gib} | {n["without_cp"]} | {n["with_cp"]} |')
    if plan.device == 'cuda' or batches:
        lines += ['', 'Assumptions (CUDA):'] + [
            f'- {a}' for a in ASSUMPTIONS_CUDA]
    else:
        lines.append('')
    lines += [f'- {a}' for a in ASSUMPTIONS_ALL]
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    from vivit_cli.memory_plan import (config_precision, max_batches,
                                       plan_step)
    precision = args.precision or config_precision(cfg)
    batch = args.batch_size or int(
        (cfg.get('train_dataloader') or {}).get('batch_size', 1))
    with_cp = True if args.with_cp else None
    plan = plan_step(cfg, batch, precision, with_cp, args.device)
    batches = (max_batches(cfg, args.gpu_mem, precision, args.reserve,
                           args.headroom) if args.gpu_mem else None)
    measured = None
    if args.measure:
        from vivit_cli.memory_measure import measure_step
        try:
            measured = measure_step(args.config, batch, precision,
                                    plan.with_cp, args.cfg_options,
                                    threads=args.threads, device=args.device)
        except RuntimeError as e:
            raise SystemExit(f'plan_memory.py: {e}')
    optimizer_name = str(cfg.optim_wrapper.optimizer.get('type'))
    if args.json:
        out = dict(config=args.config, **plan.as_dict(),
                   increase=plan.increase, optimizer_type=optimizer_name)
        if batches is not None:
            out['max_batch'] = batches
            out['gpu_reserve_gib'] = args.reserve
            out['gpu_headroom'] = args.headroom
        if measured is not None:
            out['measured'] = measured
        print(json.dumps(out))
        return out
    print(text_report(args, plan, optimizer_name, batches, measured))
    return plan


if __name__ == '__main__':
    main()
