"""Where a ViViT recognizer looks: attention heat maps over a video.

    python tools/visualizations/vis_attention.py CONFIG CHECKPOINT VIDEO \
        --out-dir DIR [--pipeline test|val] [--view 0] [--fps 4]

One view of the config's test (or val) pipeline goes through the backbone
with its attention modules recording (their explicit path; see
vivit_mm/visualization/attention_maps.py). Written to DIR, named after the
video:

* ``<name>_attention.png``: the frames the model saw, then per map one row
  of heat-map overlays (one column per frame, at most 16 columns);
* ``<name>_attention.mp4``: the frames and the overlays side by side;
* ``<name>_attention.npz``: the token maps ``[n_t, n_h, n_w]``
  (``rollout``, and ``cls_attention`` for CLS-pooled models), the frames
  ``[T, H, W, 3]`` and the class scores.

Maps, per variant: attention rollout (Abnar and Zuidema, 2020) for all
four; for ``pooling='token'`` also the last block's CLS attention. Model 2
composes the spatial encoder's rollout per temporal index with the temporal
encoder's; Models 3 and 4 compose their spatial and temporal attentions.
The overlays are min-max scaled per frame (``--per-clip``: over the whole
clip). See docs/demo.md.
"""
import argparse
import os
import os.path as osp
import sys

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Attention maps (CLS attention, rollout) of a ViViT '
        'recognizer on one video, as a PNG grid and an mp4')
    parser.add_argument('config', help='recognizer config file')
    parser.add_argument('checkpoint', help='recognizer checkpoint file')
    parser.add_argument('video', help='video file')
    parser.add_argument('--out-dir', required=True,
                        help='folder for the PNG, mp4 and npz files')
    parser.add_argument('--pipeline', choices=('test', 'val'),
                        default='test',
                        help="the config's pipeline that makes the views "
                        '(default test)')
    parser.add_argument('--view', type=int, default=0,
                        help='which of the pipeline\'s views (clips x '
                        'crops) to show (default 0)')
    parser.add_argument('--fps', type=float, default=4.0,
                        help='frame rate of the mp4 (default 4)')
    parser.add_argument('--scale', type=int, default=None,
                        help='enlarge frames by this integer factor '
                        '(default: to at least 128 px on the short side)')
    parser.add_argument('--per-clip', action='store_true',
                        help='scale the colours over the whole clip (shows '
                        'which frames matter) instead of per frame (shows '
                        'where in each frame)')
    parser.add_argument('--label-map', default=None,
                        help='class names, one per line (default: the '
                        'checkpoint\'s or the config\'s, else indices)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='heat-map opacity in [0, 1] (default 0.5)')
    parser.add_argument('--device', default='cpu',
                        help='torch device (default cpu)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (as tools/test.py)')
    args = parser.parse_args(argv)
    if args.view < 0:
        parser.error(f'--view must be >= 0, got {args.view}')
    if not 0 <= args.alpha <= 1:
        parser.error(f'--alpha must be in [0, 1], got {args.alpha}')
    if args.fps <= 0 or (args.scale is not None and args.scale < 1):
        parser.error('--fps must be > 0 and --scale >= 1')
    return args


def visualise(model, video, out_dir, pipeline='test', view=0, fps=4.0,
              scale=None, alpha=0.5, names=None, per_frame=True):
    """Compute the maps of one view and write the PNG, mp4 and npz files;
    returns ``(maps, scores, paths)``."""
    import numpy as np
    from vivit_mm.visualization import recognizer_maps
    from vivit_mm.visualization.overlay import (enlarge, grid_image,
                                                normalise, overlay, upsample,
                                                write_mp4, write_png)
    from vivit_mm.visualization.views import video_views
    all_frames, x = video_views(model, video, f'{pipeline}_pipeline')
    if view >= len(all_frames):
        raise ValueError(f'--view {view}: the {pipeline}_pipeline makes '
                         f'{len(all_frames)} views (0-{len(all_frames) - 1}).')
    frames = all_frames[view]
    maps, scores = recognizer_maps(model, x[view:view + 1])
    scores = scores[0].cpu()
    T, H, W = frames.shape[:3]
    scale = scale or max(1, -(-128 // min(H, W)))
    shown = enlarge(frames, scale)
    rows = [('frames', shown)]
    heat_maps = {'cls_attention': maps.cls_attention,
                 'rollout': maps.rollout}
    heat_maps = {k: v[0].cpu() for k, v in heat_maps.items()
                 if v is not None}
    for name, m in heat_maps.items():
        heat = upsample(m, T, (H, W))
        heat = np.stack([normalise(h) for h in heat]) if per_frame \
            else normalise(heat)
        rows.append((name.replace('_', ' '),
                     overlay(shown, enlarge(heat[..., None], scale)[..., 0],
                             alpha)))
    top = int(scores.argmax())
    label = names[top] if names else str(top)
    title = (f'{type(model.backbone).__name__} ({model.backbone.pooling}), '
             f'view {view} of {len(all_frames)}: {label} '
             f'{float(scores[top]):.2f}; colours scaled per '
             + ('frame' if per_frame else 'clip'))
    columns = sorted(set(np.linspace(0, T - 1, min(T, 16)).round()
                         .astype(int).tolist()))
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.join(out_dir, osp.splitext(osp.basename(video))[0] +
                    '_attention')
    paths = dict(png=stem + '.png', mp4=stem + '.mp4', npz=stem + '.npz')
    write_png(paths['png'], grid_image(rows, columns, title))
    write_mp4(paths['mp4'], [clip for _, clip in rows], fps)
    np.savez(paths['npz'], frames=frames, scores=scores.numpy(),
             **{k: v.numpy() for k, v in heat_maps.items()},
             **{f'method_{k}': np.array(v) for k, v in maps.method.items()})
    return maps, scores, paths


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.video):
        print(f'error: no video file {args.video!r}', file=sys.stderr)
        return 2
    from mmengine.runner.checkpoint import _load_checkpoint
    from vivit_mm.deploy.loading import class_names, load_recognizer
    from vivit_mm.models.backbones.base import BaseViViT
    try:
        model = load_recognizer(args.config, args.checkpoint,
                                args.cfg_options, device=args.device)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if not isinstance(model.backbone, BaseViViT):
        print(f'error: {args.config} has a {type(model.backbone).__name__} '
              'backbone; this tool reads ViViT attention (ViViTM1-M4).',
              file=sys.stderr)
        return 2
    meta = _load_checkpoint(args.checkpoint, map_location='cpu').get('meta')
    try:
        names = class_names(model, args.label_map, meta)
        maps, scores, paths = visualise(
            model, args.video, args.out_dir, args.pipeline, args.view,
            args.fps, args.scale, args.alpha, names, not args.per_clip)
    except (ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    top = scores.topk(min(3, scores.numel()))
    print('top classes: ' + ', '.join(
        f'{names[i]} ({p:.3f})'
        for p, i in zip(top.values.tolist(), top.indices.tolist())))
    for name, how in maps.method.items():
        print(f'{name}: {how}')
    for path in paths.values():
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
