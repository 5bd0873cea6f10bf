"""Image initialisation vs. training from scratch on little video data: the
paper's claim (section 3.4, Table 1) in miniature, on the embedded
synthetic motion data (vivit_mm/datasets/synthetic.py) and a CPU.

    python tools/analysis_tools/init_study.py [--seeds 5]
        [--train-per-class 16] [--inits scratch,uniform,central_frame,
        filter_inflation] [--json OUT]

1. Image pre-training. A tiny image ViT (mmpretrain's ``VisionTransformer``)
   learns an image task on single frames of videos that are not used later:
   regress the moving object's size (log radius). The four video classes
   differ only in the ORDER of the sizes, so no image model can tell them
   apart; what it can give a video model is a spatial encoder that already
   sees the object's size in every frame.
2. Fine-tuning. ViViT Model 2 (the synthetic demo's shape: 3 spatial and 2
   temporal layers, width 64, 8 frames of 32x32, 8x8 patches) is trained on
   ``--train-per-class`` videos per class, either from random weights
   (``scratch``) or from the image model through
   ``vivit_mm.inflate_image_weights``: ``uniform`` (uniform frame sampling,
   one token per patch per frame), ``central_frame`` and
   ``filter_inflation`` (tubelets of 2 frames). The temporal encoder and the
   head are new in every case. One recipe for all: AdamW, cosine schedule.
3. Top-1 on held-out videos, per seed (the seed draws the training videos
   and the initialisation), and mean +- std over seeds.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

INITS = {  # name: (tokeniser, tubelet size, inflation's tubelet_init)
    'scratch': ('uniform', 1, None),
    'uniform': ('uniform', 1, 'central_frame'),  # 2D filter copied
    'central_frame': ('tubelet', 2, 'central_frame'),
    'filter_inflation': ('tubelet', 2, 'average'),
}
FRAMES, SIZE, PATCH, WIDTH = 8, 32, 8, 64


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Image initialisation vs. scratch for ViViT Model 2 on '
        'a small share of the synthetic motion videos (CPU)')
    p.add_argument('--seeds', type=int, default=5,
                   help='fine-tuning seeds per initialisation (default 5)')
    p.add_argument('--train-per-class', type=int, default=16,
                   help='training videos per class (default 16)')
    p.add_argument('--test-per-class', type=int, default=50,
                   help='held-out videos per class (default 50)')
    p.add_argument('--epochs', type=int, default=40,
                   help='fine-tuning epochs (default 40)')
    p.add_argument('--pretrain-scenes', type=int, default=300,
                   help='videos whose frames pre-train the image model '
                   '(default 300, 8 frames each)')
    p.add_argument('--pretrain-epochs', type=int, default=15,
                   help='image pre-training epochs (default 15)')
    p.add_argument('--inits', default=','.join(INITS),
                   help=f'comma-separated, from {list(INITS)}')
    p.add_argument('--depth', type=int, default=3,
                   help='spatial (= image) layers (default 3)')
    p.add_argument('--temporal-depth', type=int, default=2,
                   help='temporal layers of Model 2 (default 2)')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads (default 1: the models are tiny, and '
                   'one thread wastes no time waiting on a shared CPU)')
    p.add_argument('--json', help='also write the results to this file')
    args = p.parse_args(argv)
    args.inits = [s for s in args.inits.split(',') if s]
    bad = [s for s in args.inits if s not in INITS]
    if bad or not args.inits:
        p.error(f'--inits: unknown {bad}; choose from {list(INITS)}')
    for name in ('seeds', 'train_per_class', 'test_per_class', 'epochs',
                 'pretrain_scenes', 'pretrain_epochs', 'depth',
                 'temporal_depth'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


# Data ----------------------------------------------------------------------

def _videos(split: int, count: int, seed: int):
    """``count`` videos per class: ``[N, 3, T, H, W]`` in [-1, 1], labels,
    and the object's radius (pixels) per frame ``[N, T]``."""
    import numpy as np
    import torch

    from vivit_mm.datasets import synthetic as syn
    clips, labels, radii = [], [], []
    for i in range(count * len(syn.CLASSES)):
        label = i % len(syn.CLASSES)
        key = (seed, split, i)
        clips.append(syn.make_video(label, key, FRAMES, SIZE, SIZE))
        scene = syn.sample_scene(np.random.default_rng(list(key)), SIZE,
                                 SIZE)
        k = syn.visit_order(label, FRAMES) / (FRAMES - 1)
        radii.append(scene['r_min'] * (scene['r_max'] / scene['r_min'])**k)
        labels.append(label)
    x = torch.from_numpy(np.stack(clips)).float()  # [N, T, H, W, 3]
    x = (x.permute(0, 4, 1, 2, 3) - 127.5) / 127.5  # [N, 3, T, H, W]
    return (x, torch.tensor(labels),
            torch.from_numpy(np.stack(radii)).float())


def _batches(n: int, size: int, gen):
    import torch
    order = torch.randperm(n, generator=gen)
    return [order[i:i + size] for i in range(0, n, size)]


def _cosine(opt, steps: int, warmup: int):
    import math

    import torch
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(
        (s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * s / steps))))


# 1. Image pre-training -----------------------------------------------------

def pretrain_image_vit(args, log):
    """A tiny mmpretrain ViT trained to regress log(object radius) from one
    frame; returns its state dict and the held-out R^2."""
    import logging

    import torch
    from mmengine.logging import MMLogger
    from mmpretrain.models import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(
        arch=dict(embed_dims=WIDTH, num_layers=args.depth, num_heads=4,
                  feedforward_channels=4 * WIDTH),
        img_size=SIZE, patch_size=PATCH, drop_rate=0.0)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # no per-parameter init report
    try:
        vit.init_weights()
    finally:
        logger.setLevel(level)
    head = torch.nn.Linear(WIDTH, 1)
    x, _, r = _videos(3, max(1, args.pretrain_scenes // 4), seed=1000)
    frames = x.permute(0, 2, 1, 3, 4).flatten(0, 1)  # [N * T, 3, H, W]
    target = r.log().flatten()
    mean, std = target.mean(), target.std()
    target = (target - mean) / std
    held = frames.shape[0] // 10
    xt, yt, xv, yv = frames[held:], target[held:], frames[:held], \
        target[:held]
    params = list(vit.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    gen = torch.Generator().manual_seed(0)
    steps = args.pretrain_epochs * len(_batches(len(xt), 64, gen))
    sched = _cosine(opt, steps, max(1, steps // 10))
    for _ in range(args.pretrain_epochs):
        vit.train()
        for idx in _batches(len(xt), 64, gen):
            loss = torch.nn.functional.mse_loss(
                head(vit(xt[idx])[0]).squeeze(1), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    vit.eval()
    with torch.no_grad():
        pred = head(vit(xv)[0]).squeeze(1)
    r2 = 1 - float(((pred - yv)**2).mean() / yv.var())
    log(f'image pre-training: {len(xt)} frames, {args.pretrain_epochs} '
        f'epochs; held-out R^2 of log(radius) = {r2:.3f}')
    return vit.state_dict(), r2


# 2. Fine-tuning --------------------------------------------------------------

def build_video_model(args, init: str, image_sd, seed: int):
    """Model 2 + a linear head, initialised as ``init`` names."""
    import torch
    from mmaction.registry import MODELS

    from vivit_mm import inflate_image_weights
    tokenizer, tubelet, tubelet_init = INITS[init]
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(
        type='ViViTM2', arch=dict(embed_dims=WIDTH, num_layers=args.depth,
                                  num_heads=4, feedforward_channels=4 * WIDTH),
        img_size=SIZE, num_frames=FRAMES, patch_size=PATCH,
        tubelet_size=tubelet, tokenizer=tokenizer, pooling='token',
        num_temporal_layers=args.temporal_depth))
    backbone.init_weights()
    if tubelet_init is not None:
        inflate_image_weights(backbone, image_sd, tubelet_init=tubelet_init,
                              logger=None)
    head = torch.nn.Linear(WIDTH, 4)
    torch.nn.init.trunc_normal_(head.weight, std=0.02)
    torch.nn.init.zeros_(head.bias)
    return torch.nn.Sequential(backbone, head)


def finetune(args, model, data, seed: int) -> float:
    """Train on ``data['train']``; top-1 on ``data['test']``."""
    import torch
    x, y = data['train']
    # As configs/vivit_m2_synthetic.py: 100x the lr for CLS tokens and
    # position tables, no weight decay on them, norms and biases.
    fast, plain, no_decay = [], [], []
    for name, p in model.named_parameters():
        if 'cls_token' in name or 'pos_embed' in name:
            fast.append(p)
        elif p.ndim == 1:
            no_decay.append(p)
        else:
            plain.append(p)
    lr = 1e-3
    opt = torch.optim.AdamW([
        dict(params=plain), dict(params=no_decay, weight_decay=0.0),
        dict(params=fast, lr=100 * lr, weight_decay=0.0)],
        lr=lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    batch = 16
    steps = args.epochs * len(_batches(len(x), batch, gen))
    sched = _cosine(opt, steps, max(1, steps // 10))
    for _ in range(args.epochs):
        model.train()
        for idx in _batches(len(x), batch, gen):
            xb = x[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None, None], xb.flip(-1),
                             xb)  # mirroring keeps the labels
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    model.eval()
    xt, yt = data['test']
    with torch.no_grad():
        pred = torch.cat([model(xt[i:i + 50]).argmax(1)
                          for i in range(0, len(xt), 50)])
    return float((pred == yt).float().mean())


def summarise(results: dict) -> dict:
    """``{init: (mean, std, values)}`` (std over seeds, n - 1)."""
    import statistics
    return {k: (statistics.mean(v),
                statistics.stdev(v) if len(v) > 1 else 0.0, v)
            for k, v in results.items()}


def table(summary: dict, seeds: int) -> str:
    lines = [f'| init | top-1 (mean ± std, {seeds} seeds) | per seed |',
             '|---|---|---|']
    for k, (m, s, v) in summary.items():
        per = ', '.join(f'{a:.3f}' for a in v)
        lines.append(f'| {k} | {m:.3f} ± {s:.3f} | {per} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_cli.threads import prepare_openmp
    prepare_openmp()  # before torch loads
    import torch
    from mmengine.registry import init_default_scope

    import vivit_mm  # noqa: F401
    init_default_scope('mmaction')
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    image_sd, r2 = (pretrain_image_vit(args, print)
                    if any(INITS[i][2] for i in args.inits) else (None, None))
    t_pre = time.perf_counter() - start
    test = _videos(2, args.test_per_class, seed=2000)[:2]
    results = {i: [] for i in args.inits}
    for seed in range(args.seeds):
        train = _videos(0, args.train_per_class, seed=seed)[:2]
        for init in args.inits:
            model = build_video_model(args, init, image_sd, seed)
            t0 = time.perf_counter()
            acc = finetune(args, model, dict(train=train, test=test), seed)
            results[init].append(acc)
            print(f'seed {seed} {init}: top-1 {acc:.3f} '
                  f'({time.perf_counter() - t0:.0f} s)', flush=True)
    summary = summarise(results)
    print(table(summary, args.seeds))
    total = time.perf_counter() - start
    print(f'{args.train_per_class} training videos per class, '
          f'{args.test_per_class} held-out per class, {args.epochs} epochs; '
          f'pre-training {t_pre:.0f} s, total {total:.0f} s, '
          f'{torch.get_num_threads()} threads')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), image_r2=r2, results=results,
                           seconds=total), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
