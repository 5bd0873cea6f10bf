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
        --cp-frames 16 --cp-img-size 224 --out-dir work_dirs/benchmark
    # one config's backbone at its own input shape
    python tools/analysis_tools/benchmark.py configs/vivit_m2_k400.py \\
        --layers 4 --no-compare --no-cp
"""
import argparse
import copy
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from mmengine import Config
from mmengine.registry import DefaultScope

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import vivit_mm  # noqa: E402,F401
from vivit_mm.utils.benchmark import (cuda_peak_bytes, gemm_probe,  # noqa
                                      load_average, matmul_rate, median, peak_rss_delta,
                                      saved_activation_bytes,
                                      time_interleaved, tune_malloc)
from vivit_mm.utils.complexity import count_macs  # noqa: E402

VARIANTS = ('m1', 'm2', 'm3', 'm4')
VARIANT_NAMES = {
    'm1': 'Model 1 (spatio-temporal)',
    'm2': 'Model 2 (factorised encoder)',
    'm3': 'Model 3 (factorised self-attention)',
    'm4': 'Model 4 (factorised dot-product)',
}
WIDTHS = {'b': (768, 12, 3072), 'l': (1024, 16, 4096),
          'h': (1280, 16, 5120)}
MiB = 2**20


# ----------------------------------------------------------------- options
def parse_arch(text: str) -> dict:
    """``'b'``/``'l'``/``'h'`` or ``'D,heads,mlp'`` -> width settings."""
    if text.lower() in WIDTHS:
        d, h, f = WIDTHS[text.lower()]
    else:
        try:
            d, h, f = (int(v) for v in text.split(','))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'--arch must be b, l, h or "embed_dims,num_heads,mlp", '
                f'got {text!r}') from None
    return dict(embed_dims=d, num_heads=h, feedforward_channels=f)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('Examples:')[1])
    p.add_argument('config', nargs='?',
                   help='benchmark this config\'s backbone instead of the '
                   'four variants')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS, help='variants to sweep')
    p.add_argument('--device', default='auto',
                   help='cpu, cuda, cuda:N or auto (GPU when present)')
    p.add_argument('--frames', type=int, nargs='+', default=[4, 8, 16, 32],
                   help='frame counts to sweep')
    p.add_argument('--img-size', type=int, default=160)
    p.add_argument('--patch-size', type=int, default=None,
                   help='default: the config\'s (16)')
    p.add_argument('--tubelet-size', type=int, default=None,
                   help='default: the config\'s (2)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--layers', type=int, default=4,
                   help='encoder depth (0: keep the config\'s)')
    p.add_argument('--arch', type=parse_arch, default=None,
                   help='width: b, l, h or "embed_dims,num_heads,mlp" '
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
    args = p.parse_args(argv)
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        p.error(f'--peak-tflops must be positive, got {args.peak_tflops}')
    for name in ('frames', 'batch', 'iters', 'img_size', 'patch_size',
                 'tubelet_size', 'compare_frames', 'cp_frames',
                 'cp_img_size'):
        vals = getattr(args, name)
        if vals is None:
            continue
        if any(v <= 0 for v in (vals if isinstance(vals, list) else [vals])):
            p.error(f'--{name.replace("_", "-")} must be positive, got '
                    f'{vals}')
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        p.error(f'--device {args.device}: CUDA is not available')
    return args


# ------------------------------------------------------------- the models
def variant_cfg(variant: str, args, frames: int, img_size: int,
                **overrides) -> dict:
    """A variant's backbone config (from ``configs/_base_/models``) at the
    benchmark's shape."""
    cfg = Config.fromfile(ROOT / f'configs/_base_/models/vivit_{variant}.py')
    return backbone_cfg(cfg.model.backbone.to_dict(), args, frames,
                        img_size, **overrides)


def backbone_cfg(cfg: dict, args, frames: Optional[int],
                 img_size: Optional[int], **overrides) -> dict:
    cfg = copy.deepcopy(cfg)
    arch = cfg.get('arch', 'b')
    arch = parse_zoo_arch(arch) if isinstance(arch, str) else dict(arch)
    arch.update(args.arch or {})
    if args.layers:
        arch['num_layers'] = args.layers
    cfg['arch'] = arch
    if frames:
        cfg['num_frames'] = frames
    if img_size:
        cfg['img_size'] = img_size
    if args.patch_size:
        cfg['patch_size'] = args.patch_size
    if args.tubelet_size:
        cfg['tubelet_size'] = args.tubelet_size
    cfg.setdefault('patch_size', 16)
    cfg.update(overrides)
    return cfg


def parse_zoo_arch(name: str) -> dict:
    from vivit_mm.models import BaseViViT
    return BaseViViT.parse_arch(name)


def build(cfg: dict, device) -> torch.nn.Module:
    from mmaction.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model.to(device)


def macs_of(cfg: dict, batch: int) -> int:
    from mmaction.registry import MODELS
    with torch.device('meta'), DefaultScope.overwrite_default_scope(
            'mmaction'):
        model = MODELS.build(copy.deepcopy(cfg))
    return count_macs(model, (batch, model.in_channels, model.num_frames,
                              *model.img_size))


class Case:
    """A model, its input and how to get its ``[B, D]`` feature."""

    def __init__(self, name: str, model: torch.nn.Module, x: torch.Tensor,
                 forward: Callable = None, macs: Optional[int] = None):
        self.name, self.model, self.x, self.macs = name, model, x, macs
        self._forward = forward or (lambda m, inp: m(inp))

    def forward(self) -> torch.Tensor:
        return self._forward(self.model, self.x)

    def infer(self) -> None:
        with torch.no_grad():
            self.forward()

    def train_step(self) -> None:
        """Forward, sum loss, backward; gradients dropped (no optimizer)."""
        for p in self.model.parameters():
            p.grad = None
        self.forward().float().sum().backward()


def vivit_case(name: str, cfg: dict, args, device) -> Case:
    model = build(cfg, device)
    x = torch.randn(args.batch, model.in_channels, model.num_frames,
                    *model.img_size, device=device)
    case = Case(name, model, x, macs=macs_of(cfg, args.batch))
    case.cfg = cfg
    return case


def hf_vivit_case(name: str, m1_cfg: dict, args, device, attn: str,
                  act: str) -> Case:
    """HuggingFace ``VivitModel`` with Model 1's shape."""
    from transformers import VivitConfig, VivitModel
    a = m1_cfg['arch']
    img = m1_cfg['img_size']
    t, p = m1_cfg.get('tubelet_size', 2), m1_cfg['patch_size']
    conf = VivitConfig(
        image_size=img, num_frames=m1_cfg['num_frames'],
        tubelet_size=[t, p, p], hidden_size=a['embed_dims'],
        num_hidden_layers=a['num_layers'],
        num_attention_heads=a['num_heads'],
        intermediate_size=a['feedforward_channels'], hidden_act=act,
        attn_implementation=attn)

    def fwd(m, inp):  # the final-normed CLS token, as Model 1 returns
        return m(pixel_values=inp).last_hidden_state[:, 0]

    with torch.device('meta'):
        macs = count_macs(VivitModel(conf, add_pooling_layer=False),
                          (args.batch, m1_cfg['num_frames'], 3, img, img),
                          fwd)
    model = VivitModel(conf, add_pooling_layer=False).to(device)
    x = torch.randn(args.batch, m1_cfg['num_frames'], 3, img, img,
                    device=device)  # HF's layout: [B, T, C, H, W]
    return Case(name, model, x, fwd, macs)


def timesformer_case(name: str, m3_cfg: dict, args, device) -> Case:
    """MMAction2's ``TimeSformer`` (divided space-time) with Model 3's
    shape (uniform frame sampling: one token per 16x16 patch per frame)."""
    from mmaction.registry import MODELS
    a = m3_cfg['arch']
    cfg = dict(type='TimeSformer', num_frames=m3_cfg['num_frames'],
               img_size=m3_cfg['img_size'], patch_size=m3_cfg['patch_size'],
               embed_dims=a['embed_dims'], num_heads=a['num_heads'],
               num_transformer_layers=a['num_layers'],
               attention_type='divided_space_time')
    if a['feedforward_channels'] != 4 * a['embed_dims']:
        raise ValueError('TimeSformer fixes the MLP width to 4 x embed_dims;'
                         f' --arch gives {a["feedforward_channels"]}.')
    with DefaultScope.overwrite_default_scope('mmaction'):
        with torch.device('meta'):
            meta = MODELS.build(cfg)
        macs = count_macs(meta, (args.batch, 3, m3_cfg['num_frames'],
                                 m3_cfg['img_size'], m3_cfg['img_size']))
        model = MODELS.build(cfg)
    model.init_weights()
    model = model.to(device)
    x = torch.randn(args.batch, 3, m3_cfg['num_frames'], m3_cfg['img_size'],
                    m3_cfg['img_size'], device=device)
    return Case(name, model, x, macs=macs)


# ------------------------------------------------------------ measuring
def peak_memory(case: Case, device, args) -> Optional[int]:
    """Peak memory of one training step (activations, gradients and
    temporaries).

    GPU: growth of ``torch.cuda.max_memory_allocated``. CPU: peak RSS growth
    of the step in a fresh process (``--rss-child``), since in this process
    the allocator keeps memory freed by earlier cases.
    """
    case.model.train()
    if args.no_step_peak:
        return None
    if torch.device(device).type == 'cuda':
        return cuda_peak_bytes(case.train_step, device)
    job = json.dumps(dict(cfg=case.cfg, batch=args.batch,
                          threads=torch.get_num_threads()))
    proc = subprocess.run([sys.executable, __file__, '--rss-child', job],
                          capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        print(f'peak RSS child failed: {proc.stderr[-2000:]}')
        return None
    return json.loads(lines[-1])['peak']


def rss_child(job: str) -> None:
    """Child of :func:`peak_memory`: the peak RSS growth of a training step,
    printed as JSON.

    glibc is told to serve every allocation of 64 KiB or more by ``mmap``
    (returned to the system when freed), so after a warm-up step (library
    initialisation) RSS falls back to the model and input, and the next
    step's high-water mark measures only what it allocates.
    """
    import ctypes
    try:
        libc = ctypes.CDLL('libc.so.6')
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * 1024)  # M_TRIM_THRESHOLD
    except OSError:
        pass
    job = json.loads(job)
    torch.set_num_threads(job['threads'])
    model = build(job['cfg'], 'cpu').train()
    x = torch.randn(job['batch'], model.in_channels, model.num_frames,
                    *model.img_size)
    case = Case('child', model, x)
    case.train_step()
    model.zero_grad(set_to_none=True)  # RSS now: model and input only
    print(json.dumps(dict(peak=peak_rss_delta(case.train_step))))


def activation_bytes(case: Case) -> int:
    case.model.train()
    return saved_activation_bytes(
        case.forward, exclude=list(case.model.parameters()) + [case.x])


GEMM = 'fp32 GEMM probe'


def time_cases(cases: List[Case], args, device, train: bool
               ) -> Dict[str, List[float]]:
    """Interleaved timing of the cases' inference or training steps, with a
    GEMM probe (``args.gemm_n``) in every round."""
    for c in cases:
        c.model.train(train)
    fns = {c.name: (c.train_step if train else c.infer) for c in cases}
    fns[GEMM] = args.gemm_fn
    return time_interleaved(fns, iters=args.iters, warmup=args.warmup,
                            device=device)


def utilisation(times: Dict[str, List[float]], name: str, flops: float,
                args) -> float:
    """Achieved FLOP/s over the matrix-multiply rate of the same round
    (median over rounds)."""
    return median((flops / t) / (args.gemm_flops / g)
                  for t, g in zip(times[name], times[GEMM]))


def paired_ratios(times: Dict[str, List[float]], slow: str,
                  fast: str) -> List[float]:
    """Per round ``time(slow) / time(fast)`` (> 1: ``fast`` is faster)."""
    return [a / b for a, b in zip(times[slow], times[fast])]


class Report:
    """Collects markdown lines and JSON records."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.data: dict = {}

    def add(self, *lines: str) -> None:
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)

    def table(self, header: List[str], rows: List[List[str]]) -> None:
        self.add('| ' + ' | '.join(header) + ' |',
                 '|' + '---|' * len(header),
                 *('| ' + ' | '.join(map(str, r)) + ' |' for r in rows), '')


def fmt_num(x: float) -> str:
    """3 significant digits, no exponent below 1000."""
    return f'{x:.0f}' if abs(x) >= 100 else f'{x:.3g}'


def fmt_bytes(n: Optional[int]) -> str:
    return '-' if n is None else fmt_num(n / MiB)


# -------------------------------------------------------------- sections
def machine_section(rep: Report, args, device) -> None:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                model = line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    import os
    info = dict(cpu=model, cpu_count=os.cpu_count(),
                torch=torch.__version__, threads=torch.get_num_threads(),
                device=str(device), python=platform.python_version(),
                malloc_tuned=args.malloc_tuned)
    if torch.device(device).type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    rep.data['machine'] = info
    rep.add('## Machine', '')
    rep.table(list(info), [list(info.values())])


def gemm_section(rep: Report, args, device) -> float:
    load = load_average()
    rates = matmul_rate(args.gemm_sizes, device=device)
    best = max(rates.values())
    args.gemm_n = max(rates, key=rates.get)
    args.gemm_fn, args.gemm_flops = gemm_probe(args.gemm_n, device)
    rep.data['gemm'] = dict(rates={str(k): v for k, v in rates.items()},
                            best=best, probe_n=args.gemm_n, load=load)
    rep.add('## Matrix-multiply rate (fp32, n x n @ n x n, median)', '')
    rep.table(['n', 'GFLOP/s'],
              [[n, f'{r / 1e9:.0f}'] for n, r in rates.items()])
    rep.add(f'Best: **{best / 1e9:.0f} GFLOP/s** (load average '
            f'{load:.2f}). Every timing round below also times one '
            f'{args.gemm_n}^2 GEMM; "util" is a model\'s achieved FLOP/s '
            'over the GEMM rate of the same round (median over rounds), so '
            'background load affects both alike.', '')
    return best


def sweep_section(rep: Report, cases_by_frames: Dict[int, List[Case]],
                  args, device) -> List[dict]:
    records = []
    for frames, cases in cases_by_frames.items():
        load0 = load_average()
        fwd = time_cases(cases, args, device, train=False)
        trn = None if args.no_train else time_cases(cases, args, device,
                                                    train=True)
        load1 = load_average()
        for c in cases:
            f_t = median(fwd[c.name])
            rec = dict(name=c.name, frames=frames, batch=args.batch,
                       gmacs=c.macs / 1e9, fwd_s=f_t,
                       fwd_clips_s=args.batch / f_t,
                       fwd_util=utilisation(fwd, c.name, 2 * c.macs, args),
                       act_bytes=activation_bytes(c),
                       load=(load0, load1))
            if trn is not None:
                t_t = median(trn[c.name])
                rec.update(train_s=t_t, train_clips_s=args.batch / t_t,
                           train_util=utilisation(trn, c.name, 6 * c.macs,
                                                  args),
                           peak_bytes=peak_memory(c, device, args))
            records.append(rec)
            c.model.zero_grad(set_to_none=True)
        del cases[:]  # free the models before the next frame count
    rep.data['sweep'] = records
    mem_name = ('peak alloc MiB' if torch.device(device).type == 'cuda'
                else 'step peak RSS MiB')
    rep.add('## Variants against frames', '',
            f'Batch {args.batch}, {args.shape_text}, '
            f'{args.width_text}. "util" = achieved '
            'FLOP/s / matrix-multiply rate (forward: 2 x MACs; '
            'forward+backward: 6 x MACs). Activation memory = bytes saved '
            'for backward. Step peak: peak memory growth of one training '
            'step (activations, gradients, temporaries; on CPU the peak '
            'RSS growth in a fresh process).', '')
    rows = []
    for r in records:
        rows.append([
            r['name'], r['frames'], fmt_num(r['gmacs']),
            f'{r["fwd_clips_s"]:.2f}', f'{r["fwd_util"]:.0%}',
            f'{r["train_clips_s"]:.2f}' if 'train_s' in r else '-',
            f'{r["train_util"]:.0%}' if 'train_s' in r else '-',
            fmt_bytes(r['act_bytes']), fmt_bytes(r.get('peak_bytes')),
            f'{r["load"][0]:.1f}/{r["load"][1]:.1f}'])
    rep.table(['variant', 'frames', 'GMACs', 'fwd clips/s', 'fwd util',
               'train clips/s', 'train util', 'activations MiB', mem_name,
               'load'], rows)
    growth_table(rep, records)
    return records


def growth_table(rep: Report, records: List[dict]) -> None:
    """How each variant's cost grows with frames: log-log slope between the
    smallest and largest frame count (1 = linear, 2 = quadratic)."""
    names = sorted({r['name'] for r in records})
    rows = []
    for name in names:
        rs = sorted((r for r in records if r['name'] == name),
                    key=lambda r: r['frames'])
        if len(rs) < 2:
            continue
        lo, hi = rs[0], rs[-1]
        k = math.log(hi['frames'] / lo['frames'])

        def slope(key):
            return math.log(hi[key] / lo[key]) / k

        rows.append([name, f'{lo["frames"]}->{hi["frames"]}',
                     f'{slope("gmacs"):.2f}', f'{slope("fwd_s"):.2f}',
                     f'{slope("act_bytes"):.2f}',
                     fmt_bytes((hi['act_bytes'] - lo['act_bytes']) /
                               (hi['frames'] - lo['frames']))])
    if rows:
        rep.data['growth'] = rows
        rep.add('Growth with frames (log-log slope: 1 = linear, 2 = '
                'quadratic):', '')
        rep.table(['variant', 'frames', 'MACs slope', 'fwd time slope',
                   'activation slope', 'activation MiB / frame'], rows)


def explicit_memory_section(rep: Report, args, device) -> None:
    """Model 1's activation memory with the explicit (non-fused) attention
    that materialises the N x N matrices, for reference."""
    rows, data = [], []
    for frames in args.frames:
        for fused in (True, False):
            cfg = variant_cfg('m1', args, frames, args.img_size,
                              fused_attn=fused)
            c = vivit_case('m1', cfg, args, device)
            b = activation_bytes(c)
            data.append(dict(frames=frames, fused=fused, act_bytes=b))
            del c
        rows.append([frames, fmt_bytes(data[-2]['act_bytes']),
                     fmt_bytes(data[-1]['act_bytes'])])
    rep.data['m1_attention_memory'] = data
    rep.add('### Model 1 activation memory: fused SDPA vs explicit '
            'softmax(QK^T)V', '')
    rep.table(['frames', 'fused MiB (default)', 'explicit MiB'], rows)


def compare_section(rep: Report, args, device) -> None:
    f, img = args.compare_frames, args.img_size
    m1 = variant_cfg('m1', args, f, img)
    m3 = variant_cfg('m3', args, f, img, tokenizer='uniform',
                     tubelet_size=1, drop_path_rate=0.1)
    cases = [vivit_case('vivit_mm Model 1', m1, args, device)]
    for attn, act in (('sdpa', 'gelu_fast'), ('sdpa', 'gelu_pytorch_tanh'),
                      ('eager', 'gelu_fast')):
        cases.append(hf_vivit_case(f'HF VivitModel {attn} {act}', m1, args,
                                   device, attn, act))
    cases += [vivit_case('vivit_mm Model 3 (uniform)', m3, args, device),
              timesformer_case('MMAction2 TimeSformer', m3, args, device)]
    pairs = [(c.name, 'vivit_mm Model 1') for c in cases[1:4]]
    pairs.append(('MMAction2 TimeSformer', 'vivit_mm Model 3 (uniform)'))
    results = {}
    for train in ((False, ) if args.no_train else (False, True)):
        load0 = load_average()
        times = time_cases(cases, args, device, train)
        results['train' if train else 'forward'] = dict(
            times=times, load=(load0, load_average()))
    rep.data['compare'] = dict(frames=f, results=results,
                               macs={c.name: c.macs for c in cases})
    rep.add('## Side by side (interleaved call by call)', '',
            f'{f} frames at {img}x{img}, batch {args.batch}, '
            f'{args.width_text}. Model 1 and '
            f'HuggingFace: tubelets {m1["tubelet_size"]}x{m1["patch_size"]}'
            f'x{m1["patch_size"]}, CLS token. Model 3 and '
            'TimeSformer: uniform frame sampling (one token per '
            f'{m3["patch_size"]}x{m3["patch_size"]} patch per '
            'frame), stochastic depth 0.1 on both; TimeSformer adds a CLS '
            'token and its temporal_fc. Speed-up = median over rounds of '
            'time(theirs) / time(ours) in the same round.', '')
    rows = []
    for mode, res in results.items():
        t = res['times']
        for c in cases:
            med = median(t[c.name])
            k = 2 if mode == 'forward' else 6
            rows.append([mode, c.name, fmt_num(c.macs / 1e9),
                         f'{args.batch / med:.2f}',
                         f'{utilisation(t, c.name, k * c.macs, args):.0%}',
                         f'{res["load"][0]:.1f}/{res["load"][1]:.1f}'])
    rep.table(['mode', 'model', 'GMACs', 'clips/s', 'util', 'load'], rows)
    rows = []
    for mode, res in results.items():
        for slow, fast in pairs:
            r = paired_ratios(res['times'], slow, fast)
            rows.append([mode, f'{fast} vs {slow}', f'{median(r):.2f}x',
                         f'{min(r):.2f}-{max(r):.2f}'])
    rep.data['compare']['speedups'] = rows
    rep.table(['mode', 'pair', 'speed-up (median)', 'range'], rows)
    for c in cases:
        c.model.zero_grad(set_to_none=True)


def checkpoint_section(rep: Report, args, device) -> None:
    rows, data = [], {}
    cases = []
    for cp in (False, True):
        cfg = variant_cfg('m1', args, args.cp_frames, args.cp_img_size,
                          with_cp=cp)
        c = vivit_case(f'Model 1 with_cp={cp}', cfg, args, device)
        data[cp] = dict(act_bytes=activation_bytes(c),
                        peak_bytes=peak_memory(c, device, args))
        cases.append(c)
    times = time_cases(cases, args, device, train=True)
    for cp, c in zip((False, True), cases):
        data[cp]['train_s'] = median(times[c.name])
        rows.append([cp, fmt_bytes(data[cp]['act_bytes']),
                     fmt_bytes(data[cp]['peak_bytes']),
                     f'{args.batch / data[cp]["train_s"]:.2f}'])
    ratio = data[True]['act_bytes'] / data[False]['act_bytes']
    rep.data['checkpoint'] = dict(frames=args.cp_frames,
                                  img_size=args.cp_img_size,
                                  results={str(k): v
                                           for k, v in data.items()},
                                  act_ratio=ratio)
    rep.add('## Activation checkpointing (Model 1)', '',
            f'{args.cp_frames} frames at {args.cp_img_size}x'
            f'{args.cp_img_size}, batch {args.batch}, {args.layers} layers.',
            '')
    rep.table(['with_cp', 'activations MiB', 'step peak MiB',
               'train clips/s'], rows)
    rep.add(f'with_cp keeps **{ratio:.1%}** of the activation memory; '
            f'training step time x'
            f'{data[True]["train_s"] / data[False]["train_s"]:.2f}.', '')


#: Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, in
#: TFLOP/s, by a part of the name torch.cuda.get_device_name reports; first
#: match wins. The denominator of MFU; --peak-tflops overrides it.
BF16_PEAK_TFLOPS = (('H200', 989.4), ('H100 PCIe', 756.5),
                    ('H100 NVL', 835.5), ('H100', 989.4), ('A100', 312.0))


def bf16_peak_flops(args, device) -> Optional[float]:
    """The GPU's datasheet bf16 peak (FLOP/s) for MFU, or None."""
    if args.peak_tflops is not None:
        return args.peak_tflops * 1e12
    if torch.device(device).type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for part, tflops in BF16_PEAK_TFLOPS:
        if part.lower() in name.lower():
            return tflops * 1e12
    return None


def amp_section(rep: Report, args, device) -> None:
    dev_type = torch.device(device).type
    if dev_type == 'cuda' and not torch.cuda.is_bf16_supported():
        rep.add('## bf16 autocast', '', 'Not supported on this GPU.', '')
        return
    load = load_average()
    bf16_gemm = max(matmul_rate([args.gemm_n], device=device,
                                dtype=torch.bfloat16).values())
    peak = bf16_peak_flops(args, device)
    rows, data = [], []
    for v, cfg in section_cfgs(args):
        c = vivit_case(v, cfg, args, device)
        c.model.eval()
        with torch.no_grad():
            ref = c.forward().float()
        amp = Case(f'{v} bf16', c.model, c.x, macs=c.macs)
        amp._forward = _autocast_forward(dev_type)
        with torch.no_grad():
            out = amp.forward().float()
        err = ((out - ref).norm() / ref.norm()).item()
        fwd = time_cases([c, amp], args, device, train=False)
        rec = dict(variant=v, rel_err=err,
                   fp32_fwd_s=median(fwd[c.name]),
                   bf16_fwd_s=median(fwd[amp.name]))
        if not args.no_train:
            trn = time_cases([c, amp], args, device, train=True)
            rec.update(fp32_train_s=median(trn[c.name]),
                       bf16_train_s=median(trn[amp.name]))
        rec['bf16_fwd_util'] = 2 * c.macs / rec['bf16_fwd_s'] / bf16_gemm
        rec['bf16_train_util'] = (6 * c.macs / rec['bf16_train_s'] /
                                  bf16_gemm if 'bf16_train_s' in rec
                                  else math.nan)
        if peak is not None:
            rec['bf16_train_mfu'] = (6 * c.macs / rec['bf16_train_s'] / peak
                                     if 'bf16_train_s' in rec else math.nan)
        data.append(rec)
        rows.append([v, f'{err:.1e}',
                     f'{args.batch / rec["fp32_fwd_s"]:.2f}',
                     f'{args.batch / rec["bf16_fwd_s"]:.2f}',
                     f'{rec["bf16_fwd_util"]:.0%}',
                     f'{args.batch / rec.get("fp32_train_s", math.nan):.2f}',
                     f'{args.batch / rec.get("bf16_train_s", math.nan):.2f}',
                     f'{rec["bf16_train_util"]:.0%}'] +
                    ([f'{rec["bf16_train_mfu"]:.1%}'] if peak else []))
        del c, amp
    rep.data['amp'] = dict(bf16_gemm=bf16_gemm, bf16_peak=peak, load=load,
                           results=data)
    rep.add(f'## bf16 autocast (`torch.autocast("{dev_type}", '
            'dtype=torch.bfloat16)`)', '',
            f'{section_shape(args)}, batch {args.batch}. rel err = ||bf16 - fp32||'
            ' / ||fp32|| of the features. bf16 util = achieved FLOP/s over '
            f'this run\'s bf16 {args.gemm_n}^2 GEMM rate '
            f'({bf16_gemm / 1e9:.0f} GFLOP/s; medians, not paired).' +
            (f' MFU = model FLOPs of a training step (6 x MACs) per second '
             f'over the datasheet bf16 peak ({peak / 1e12:.1f} TFLOP/s); '
             'the step is forward + backward without the optimizer update.'
             if peak else ''), '')
    rep.table(['variant', 'rel err', 'fp32 fwd clips/s', 'bf16 fwd clips/s',
               'bf16 fwd util', 'fp32 train clips/s', 'bf16 train clips/s',
               'bf16 train util'] + (['bf16 train MFU'] if peak else []),
              rows)


def section_cfgs(args) -> List[tuple]:
    """``(name, backbone cfg)`` for the bf16 and compile sections: the
    config's backbone at its first swept shape, or each variant at
    ``--compare-frames``."""
    if args.config_backbone is not None:
        return [args.config_backbone]
    return [(v, variant_cfg(v, args, args.compare_frames, args.img_size))
            for v in args.variants]


def section_shape(args) -> str:
    cfg = section_cfgs(args)[0][1]
    img = cfg['img_size']
    img = img if isinstance(img, (list, tuple)) else (img, img)
    return f'{cfg["num_frames"]} frames at {img[0]}x{img[1]}'


def _autocast_forward(dev_type: str) -> Callable:
    def fwd(m, inp):
        with torch.autocast(dev_type, dtype=torch.bfloat16):
            return m(inp)
    return fwd


def _compiled_case(eager: Case, freezing: bool) -> tuple:
    """``torch.compile`` of ``eager``'s model, compiled by a first call
    (with inductor's ``freezing``: weights become constants, so linears get
    prepacked oneDNN kernels with bias and activation fused). Returns the
    case, its compile seconds and its relative error against eager."""
    import torch._inductor.config as inductor_config
    name = f'{eager.name} compiled' + (' +freezing' if freezing else '')
    case = Case(name, torch.compile(eager.model), eager.x, macs=eager.macs)
    t0 = time.perf_counter()
    with torch.no_grad(), inductor_config.patch(freezing=freezing):
        out = case.forward()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        ref = eager.forward()
    return case, seconds, ((out - ref).norm() / ref.norm()).item()


def compile_section(rep: Report, args, device) -> None:
    rows, data = [], []
    for v, cfg in section_cfgs(args):
        eager = vivit_case(v, cfg, args, device)
        eager.model.eval()
        cases, rec = [eager], dict(variant=v)
        for freezing in (False, True):
            torch._dynamo.reset()
            case, sec, err = _compiled_case(eager, freezing)
            cases.append(case)
            rec[f'compile_s_freezing={freezing}'] = sec
            rec[f'rel_err_freezing={freezing}'] = err
        times = time_cases(cases, args, device, train=False)
        row = [v]
        for c in cases:
            rec[f'{c.name} s'] = median(times[c.name])
            rec[f'{c.name} util'] = utilisation(times, c.name,
                                                2 * eager.macs, args)
            row += [f'{args.batch / rec[c.name + " s"]:.2f}',
                    f'{rec[c.name + " util"]:.0%}']
        row.append(' / '.join(
            f'{rec[f"compile_s_freezing={f}"]:.0f}' for f in (False, True)))
        row.append(f'{max(rec["rel_err_freezing=False"], rec["rel_err_freezing=True"]):.0e}')  # noqa: E501
        data.append(rec)
        rows.append(row)
        del eager, cases
    torch._dynamo.reset()
    rep.data['compile'] = data
    rep.add('## torch.compile (forward, eval)', '',
            f'{section_shape(args)}, batch {args.batch}. "+freezing": '
            '`torch._inductor.config.freezing = True` (inference only).', '')
    rep.table(['variant', 'eager clips/s', 'eager util',
               'compiled clips/s', 'compiled util',
               '+freezing clips/s', '+freezing util', 'compile s',
               'max rel err'], rows)


def plot(data: dict, path: Path) -> None:
    """Throughput and memory against frames from a run's JSON data (the
    ``sweep`` records, and Model 1 with explicit attention when present)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    records = data['sweep']
    keys = [('fwd_clips_s', 'forward clips/s'),
            ('train_clips_s', 'forward+backward clips/s'),
            ('act_bytes', 'training activations (MiB)')]
    keys = [k for k in keys if any(k[0] in r for r in records)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6),
                             squeeze=False)
    for ax, (key, label) in zip(axes[0], keys):
        for name in sorted({r['name'] for r in records}):
            rs = sorted((r for r in records if r['name'] == name),
                        key=lambda r: r['frames'])
            ys = [r[key] / (MiB if key == 'act_bytes' else 1) for r in rs]
            ax.plot([r['frames'] for r in rs], ys, marker='o',
                    label=VARIANT_NAMES.get(name, name))
        explicit = [r for r in data.get('m1_attention_memory', [])
                    if not r['fused']]
        if key == 'act_bytes' and explicit:
            ax.plot([r['frames'] for r in explicit],
                    [r['act_bytes'] / MiB for r in explicit], 'k--',
                    marker='x', label='Model 1, explicit attention')
            ax.legend(fontsize=7)
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sorted({r['frames'] for r in records}))
        ax.set_xlabel('frames')
        ax.set_title(label, fontsize=10)
        ax.grid(True, which='both', alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(data.get('title', ''), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -------------------------------------------------------------------- main
def main(argv=None) -> Report:
    argv_list = sys.argv[1:] if argv is None else argv
    if argv_list[:1] == ['--rss-child']:
        rss_child(argv_list[1])
        return None
    args = parse_args(argv)
    args.malloc_tuned = tune_malloc() if args.tune_malloc else False
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    rep = Report()
    rep.add('# vivit_mm benchmark', '',
            f'Command: `python tools/analysis_tools/benchmark.py '
            f'{" ".join(sys.argv[1:] if argv is None else argv)}`', '')
    machine_section(rep, args, device)
    gemm_section(rep, args, device)

    if args.config:
        cfg = Config.fromfile(args.config)
        base = cfg.model.backbone.to_dict()
        frames_list = args.frames if '--frames' in (argv or sys.argv) \
            else [base.get('num_frames', 32)]
        img = args.img_size if '--img-size' in (argv or sys.argv) \
            else base.get('img_size', 224)
        cases = {f: [vivit_case(base['type'], backbone_cfg(
            base, args, f, img), args, device)] for f in frames_list}
        args.config_backbone = (base['type'],
                                backbone_cfg(base, args, frames_list[0], img))
    else:
        args.config_backbone = None
        cases = {f: [vivit_case(v, variant_cfg(v, args, f, args.img_size),
                                args, device) for v in args.variants]
                 for f in args.frames}
    first = next(iter(cases.values()))[0].model
    a = first.arch_settings
    args.shape_text = (f'{first.img_size[0]}x{first.img_size[1]}, patch '
                       f'{first.patch_size[0]}, tubelet {first.tubelet_size}')
    args.width_text = (f'D={a["embed_dims"]}, {a["num_heads"]} heads, MLP '
                       f'{a["feedforward_channels"]}, {a["num_layers"]} '
                       'layers')
    records = sweep_section(rep, cases, args, device)
    if not args.config and 'm1' in args.variants:
        explicit_memory_section(rep, args, device)
    rep.data['title'] = (f'{args.width_text}, {args.shape_text}, batch '
                         f'{args.batch}')
    if len({r['frames'] for r in records}) > 1:
        plot(rep.data, out_dir / 'benchmark.png')
        rep.add(f'Plot: `{out_dir / "benchmark.png"}`', '')
    if not args.no_compare:
        compare_section(rep, args, device)
    if not args.no_cp and not args.no_train:
        checkpoint_section(rep, args, device)
    if not args.no_amp:
        amp_section(rep, args, device)
    if args.compile:
        compile_section(rep, args, device)
    rep.data['args'] = {k: v for k, v in vars(args).items()
                        if not callable(v)}
    (out_dir / 'benchmark.md').write_text('\n'.join(rep.lines) + '\n')
    (out_dir / 'benchmark.json').write_text(
        json.dumps(rep.data, indent=1, default=str))
    print(f'Wrote {out_dir}/benchmark.{{md,json,png}}')
    return rep


if __name__ == '__main__':
    main()
