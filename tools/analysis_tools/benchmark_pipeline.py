#!/usr/bin/env python
"""Benchmark a config's input pipeline: clips per second per data loader
worker, a per-transform time breakdown, and how many workers one
accelerator needs to keep up with the model.

The pipeline is the config's own (``--split``), run in this one process
with one thread (as a data loader worker: OpenCV and torch limited to one
thread), on real-sized videos: ``--videos DIR``, or generated like the
data set (``--kind``; Kinetics: H.264, short side 256-320, 25-30 fps, 10 s,
key frame interval 250; SSv2: VP9 WebM, height 240, 12 fps) and cached in
``--cache-dir``. The model's demand is ``--model-clips-per-s`` (views/s,
measured), else an estimate from the model's FLOPs per view and
``--accelerator-tflops`` x ``--utilisation``. ``--decoder pyav-index``
times the same pipeline with vivit_mm's PyAV transforms in place of
decord's (how the decoders compare: docs/performance.md).

Examples:
    python tools/analysis_tools/benchmark_pipeline.py \\
        configs/vivit_m2_k400.py --split train --num-clips 24
    python tools/analysis_tools/benchmark_pipeline.py \\
        configs/vivit_m2_k400.py --split test --videos data/my_videos \\
        --model-clips-per-s 40
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
# The measuring code (vivit_bench) lives beside this script.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPLITS = ('train', 'val', 'test')
KINDS = ('auto', 'kinetics', 'ssv2')
DECODERS = ('config', 'pyav-index')


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
        return value
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '))
    p.add_argument('config', help='config file')
    p.add_argument('--split', choices=SPLITS, default='train',
                   help='which pipeline (default: train)')
    p.add_argument('--videos', help='folder of videos to use (default: '
                   'generate real-sized ones)')
    p.add_argument('--kind', choices=KINDS, default='auto',
                   help='generated videos: like Kinetics or SSv2 (auto: '
                   'SSv2 for configs whose data is sthv2)')
    p.add_argument('--num-videos', type=positive(int), default=4,
                   help='generated videos (default: 4)')
    p.add_argument('--cache-dir', default=str(ROOT / 'data' /
                                              'pipeline_bench'),
                   help='where generated videos are kept (default: '
                   'data/pipeline_bench, git-ignored)')
    p.add_argument('--num-clips', type=positive(int), default=20,
                   help='samples timed (default: 20)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--decoder', choices=DECODERS, default='config',
                   help="pipeline decoder: the config's, or vivit_mm's PyAV "
                   'transforms in place of DecordInit/DecordDecode')
    p.add_argument('--model-clips-per-s', type=positive(float),
                   help='measured model throughput, views (clips) per '
                   'second per accelerator')
    p.add_argument('--accelerator-tflops', type=positive(float),
                   default=312.0, help='accelerator peak for the estimate '
                   '(default: 312, an A100\'s dense bf16 peak)')
    p.add_argument('--utilisation', type=positive(float), default=0.4,
                   help='fraction of the peak the model reaches (default: '
                   '0.4)')
    p.add_argument('--paper-models', action='store_true',
                   help='also the workers ViViT-B/16x2 Models 1-4 at the '
                   "paper's shape need with this worker rate")
    p.add_argument('--threads', type=positive(int), default=1,
                   help='OpenCV/torch threads (default: 1, as a worker)')
    p.add_argument('--out-dir', help='also write pipeline.md and '
                   'pipeline.json here')
    args = p.parse_args(argv)
    if args.utilisation > 1:
        p.error('--utilisation must be in (0, 1]')
    if not Path(args.config).is_file():
        p.error(f'no such config file: {args.config}')
    if args.num_videos > 6 or (args.kind == 'ssv2' and args.num_videos > 4):
        p.error('--num-videos: 6 Kinetics-like and 4 SSv2-like videos are '
                'generated at most; use --videos DIR for more')
    if args.videos is not None and not Path(args.videos).is_dir():
        p.error(f'--videos: no such folder: {args.videos}')
    return args


def swap_decoder(pipeline, decoder):
    """Replace DecordInit/DecordDecode with vivit_mm's PyAV transforms."""
    if decoder == 'config':
        return pipeline
    names = {'DecordInit': 'PyAVIndexInit', 'DecordDecode': 'PyAVIndexDecode'}
    out = []
    for t in pipeline:
        t = dict(t)
        if 'transforms' in t:
            t['transforms'] = swap_decoder(t['transforms'], decoder)
        if t.get('type') in names:
            t = dict(type=names[t['type']],
                     **{k: v for k, v in t.items()
                        if k in ('io_backend', 'num_threads')})
        out.append(t)
    return out


#: ViViT paper, Table 2 (ViViT-B/16x2, 32 x 224 x 224): TPU-v3 runtime,
#: ms per view (inference).
PAPER_TPU_MS = {1: 58.9, 2: 17.4, 3: 31.7, 4: 22.9}


def paper_models(rep, args, s, pl, Config):
    """Workers per accelerator for the four ViViT-B variants, with this
    run's worker rate (the K400 pipelines are shared by their configs)."""
    rows, data = [], {}
    for m, tpu_ms in PAPER_TPU_MS.items():
        cfg = Config.fromfile(str(ROOT / 'configs' / f'vivit_m{m}_k400.py'))
        macs, _ = pl.config_macs(cfg)
        est = pl.model_rate(s['views'], args.split, None, macs,
                            args.accelerator_tflops, args.utilisation)
        row = [f'Model {m}', f'{macs / 1e9:.1f}',
               f"{est['views_per_s']:.0f}",
               pl.workers_needed(est['samples_per_s'], s['samples_per_s'])]
        if args.split != 'train':
            tpu = pl.model_rate(s['views'], args.split, 1e3 / tpu_ms)
            row += [f'{1e3 / tpu_ms:.0f}', pl.workers_needed(
                tpu['samples_per_s'], s['samples_per_s'])]
        rows.append(row)
        data[m] = row
    header = ['ViViT-B/16x2', 'GMACs / view', 'views/s (estimate)',
              'workers (estimate)']
    if args.split != 'train':
        header += ["views/s (paper's TPU-v3 runtime)", 'workers (TPU-v3)']
    rep.add(f'## Workers per accelerator, ViViT-B Models 1-4 ({args.split}, '
            f'{s["samples_per_s"]:.2f} samples/s per worker)', '',
            f'Estimate: {args.accelerator_tflops:g} TFLOP/s x '
            f'{args.utilisation:g}, 2 FLOPs per MAC'
            + (', x 3 for forward + backward.' if args.split == 'train'
               else '.'), '')
    rep.table(header, rows)
    rep.data['paper_models'] = data


def main(argv=None):
    args = parse_args(argv)
    from vivit_mm.utils.optional import require_or_exit
    # PyAV encodes the generated videos and is the pyav-index decoder;
    # --videos DIR with the config's decoder needs the base install only.
    if not args.videos:
        require_or_exit('av', purpose='benchmark_pipeline.py (generating '
                        'videos; --videos DIR uses yours)')
    if args.decoder == 'pyav-index':
        require_or_exit('av', purpose='--decoder pyav-index')
    import cv2
    import torch
    from mmengine.config import Config

    from vivit_bench import pipeline as pl
    from vivit_bench import videos as vids
    from vivit_bench.measure import load_average
    from vivit_bench.report import Report, fmt_num

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    pipeline = swap_decoder(pl.pipeline_of(cfg, args.split), args.decoder)
    steps = pl.build_steps(pipeline)
    kind = args.kind
    if kind == 'auto':
        kind = 'ssv2' if 'sthv2' in str(cfg.get('data_root', '')) else (
            'kinetics')
    if args.videos:
        videos = vids.list_videos(args.videos)
        source = f'from {args.videos}'
    else:
        videos = vids.generated_videos(args.cache_dir, kind, args.num_videos)
        source = f'generated ({kind}-like, cached in {args.cache_dir})'

    rep = Report()
    load0 = load_average()
    rep.add(f'# Input pipeline: {Path(args.config).name}, {args.split}', '',
            f'Videos {source}:', '')
    rep.table(['video', 'size', 'fps', 's', 'codec'],
              [(v['name'], f"{v['width']}x{v['height']}", f"{v['fps']:g}",
                f"{v['seconds']:.1f}", v['codec'])
               for v in vids.describe(videos)])
    result = pl.time_pipeline(steps, videos, args.num_clips, args.seed)
    s = pl.summarise(result)
    rep.add(f'{s["samples"]} samples, {s["views"]} view(s) each, input '
            f'{s["shape"]}; one process, {args.threads} thread(s); '
            f'decoder: {args.decoder}.', '')
    rep.table(['transform', 'ms / sample', 'share', 'CPU ms / sample'],
              [(n, fmt_num(ms), f'{100 * sh:.0f}%', fmt_num(c))
               for n, ms, sh, c in s['rows']] +
              [('**total**', f'**{fmt_num(s["ms_per_sample"])}**', '100%',
                fmt_num(s['cpu_ms_per_sample']))])
    rep.add(f'Per worker: **{s["samples_per_s"]:.2f} samples/s** = '
            f'{s["views_per_s"]:.2f} views (clips)/s (wall clock; '
            f'{s["cpu_samples_per_s"]:.2f} samples/s from CPU time).', '')

    macs = None
    if args.model_clips_per_s is None:
        macs, _ = pl.config_macs(cfg)
    need = pl.model_rate(s['views'], args.split, args.model_clips_per_s,
                         macs, args.accelerator_tflops, args.utilisation)
    workers = pl.workers_needed(need['samples_per_s'], s['samples_per_s'])
    rep.add(f'Model: {need["views_per_s"]:.1f} views/s = '
            f'{need["samples_per_s"]:.2f} samples/s per accelerator '
            f'({need["how"]}).',
            f'**Workers needed per accelerator: {workers}** '
            f'(one CPU core each).', '')
    rep.data = dict(config=str(args.config), split=args.split,
                    videos=[str(v) for v in videos], pipeline=s,
                    model=need, workers=workers, macs=macs,
                    decoder=args.decoder)

    if args.paper_models:
        paper_models(rep, args, s, pl, Config)
    load1 = load_average()
    rep.add(f'Load average (1 min) before/after: {load0:.2f}/{load1:.2f}'
            ' (above ~0.5 on this machine: measured under load).')
    rep.data['load'] = [load0, load1]
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rep.write(out / 'pipeline.md', out / 'pipeline.json')
    return rep


if __name__ == '__main__':
    main()
