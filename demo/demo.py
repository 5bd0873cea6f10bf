"""Classify one video with a ViViT recognizer: print the top-k classes,
and optionally write the video with them drawn on it.

    python demo/demo.py VIDEO CONFIG CHECKPOINT [--label-map LABELS.txt]
        [--out-filename OUT.mp4|OUT.gif] [--fps FPS]
        [--sliding-window [--stride N] [--timeline OUT.png]]
        [--out-json OUT.json]

The class names come from ``--label-map`` (one name per line, in label
order; for Kinetics-400 MMAction2's tools/data/kinetics/label_map_k400.txt),
else from the checkpoint's ``meta.dataset_meta.classes`` or the config's
``label_names`` (converted official and HuggingFace checkpoints carry them),
else the class indices are printed. The config's test pipeline (e.g. 4 clips
x 3 crops for the Kinetics configs) is applied and the per-view scores are
averaged as the config's head says.

``--out-filename`` writes every frame of the video, at its size, with the
top-k classes and probabilities drawn by MMAction2's ``ActionVisualizer``.
``--sliding-window`` classifies successive windows of ``clip_len x
frame_interval`` frames (one clip each, with the config's spatial crops;
see :mod:`vivit_mm.deploy.prediction`), prints them, draws on each frame the
prediction of the latest window that covers it and plots the top classes'
probabilities over time (``--timeline``, by default next to
``--out-filename`` or ``--out-json`` as ``<name>_timeline.png``).
``--out-json`` writes the probabilities (per window with
``--sliding-window``).
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Top-k classes of a video with a ViViT recognizer')
    parser.add_argument('video', help='video file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--label-map', default=None,
        help='class names, one per line (default: the names the checkpoint '
        'or the config carries, else class indices)')
    parser.add_argument(
        '--topk', type=int, default=5, help='number of classes to print')
    parser.add_argument(
        '--device', default=None,
        help='device, e.g. cpu or cuda:0 (default: cuda:0 if available)')
    parser.add_argument(
        '--out-filename', default=None,
        help='write the video with the top-k classes drawn on every frame '
        '(.mp4 or .gif)')
    parser.add_argument(
        '--fps', type=float, default=None,
        help='frame rate of --out-filename (default: the input\'s)')
    parser.add_argument(
        '--sliding-window', action='store_true',
        help='classify successive windows of clip_len x frame_interval '
        'frames (the config\'s test clip) and plot a timeline')
    parser.add_argument(
        '--stride', type=int, default=None,
        help='frames between window starts (default: the window length)')
    parser.add_argument(
        '--timeline', default=None,
        help='timeline plot (.png) of --sliding-window (default: '
        '<--out-filename or --out-json>_timeline.png)')
    parser.add_argument(
        '--out-json', default=None,
        help='write the class probabilities (per window with '
        '--sliding-window) as JSON; with --sliding-window each window is '
        'also appended to OUT.windows.jsonl as it is classified')
    parser.add_argument(
        '--resume', action='store_true',
        help='--sliding-window --out-json: continue from the windows of '
        'OUT.windows.jsonl (a stopped or killed run)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.test_cfg.max_testing_views=1')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    if args.fps is not None and not args.fps > 0:
        parser.error(f'--fps must be > 0, got {args.fps}')
    if args.stride is not None and args.stride < 1:
        parser.error(f'--stride must be >= 1, got {args.stride}')
    if not args.sliding_window and (args.stride or args.timeline):
        parser.error('--stride and --timeline need --sliding-window')
    if args.resume and not (args.sliding_window and args.out_json):
        parser.error('--resume needs --sliding-window and --out-json (the '
                     'windows are kept in OUT.windows.jsonl)')
    if args.sliding_window and args.timeline is None:
        base = args.out_filename or args.out_json
        if base is None:
            parser.error('--sliding-window writes a timeline plot: give '
                         '--timeline OUT.png, --out-filename or --out-json')
        args.timeline = os.path.splitext(base)[0] + '_timeline.png'
    if args.timeline is not None and not args.timeline.lower().endswith(
            '.png'):
        parser.error(f'--timeline must name a .png file, got '
                     f'{args.timeline!r}')
    return args


def top_lines(probs, names: List[str], k: int) -> List[str]:
    """The ``k`` best classes of ``probs`` as drawn on the frames."""
    from vivit_mm.visualization.prediction_video import prediction_lines
    p, idx = probs.topk(min(k, probs.numel()))
    return prediction_lines(idx.tolist(), p.tolist(), names)


def whole_video(model, args, names: List[str]) -> dict:
    """Top-k of the whole video (the config's test views), printed."""
    from vivit_mm.deploy.prediction import video_probabilities
    probs = video_probabilities(model, args.video)
    p, idx = probs.topk(min(args.topk, probs.numel()))
    print(f'Top-{len(idx)} classes of {args.video}:')
    for rank, (q, i) in enumerate(zip(p.tolist(), idx.tolist()), 1):
        print(f'{rank}. {names[i]} ({q:.4f})')
    lines = top_lines(probs, names, args.topk)
    return dict(probs=[float(q) for q in probs],
                lines_of_frame=lambda i: lines)


def sliding_windows(model, args, names: List[str], num_frames: int,
                    fps: Optional[float]) -> dict:
    """Top-k of every window, printed; the timeline's data."""
    import torch

    from vivit_mm.deploy import prediction
    from vivit_mm.deploy.bulk import Progress
    from vivit_mm.visualization.prediction_video import timeline_series
    clip_len, interval = prediction.clip_sampling(model.cfg.test_pipeline)
    length = clip_len * interval
    total = len(prediction.window_starts(num_frames, length,
                                         args.stride or length))
    print(f'{total} windows of {length} frames (stride '
          f'{args.stride or length}) over {num_frames} frames of '
          f'{args.video}:')
    log = WindowLog(args.out_json + '.windows.jsonl', args.resume) \
        if args.out_json else None
    done = log.windows if log else {}
    progress = Progress(total, len(done), what='windows')

    def best(w):
        probs = torch.from_numpy(w.probs)
        p, idx = probs.topk(min(args.topk, probs.numel()))
        return ', '.join(f'{names[i]} ({q:.4f})'
                         for q, i in zip(p.tolist(), idx.tolist()))

    def on_window(w):  # printed and kept as it comes
        if log is not None:
            log.add(w)
        print(f'window {w.index}: frames {w.start}-{w.stop - 1}: {best(w)}',
              flush=True)
        progress.update()

    for w in sorted(done.values(), key=lambda w: w.index):
        print(f'window {w.index}: frames {w.start}-{w.stop - 1}: {best(w)} '
              '(earlier run)')
    try:
        windows = prediction.classify_windows(
            model, args.video, num_frames, args.stride, done=done,
            on_window=on_window)
    finally:
        progress.close()
    lines = [[f'Window {w.index}: frames {w.start}-{w.stop - 1}'] +
             top_lines(torch.from_numpy(w.probs), names, args.topk)
             for w in windows]
    owner = prediction.frame_windows(num_frames, [w.start for w in windows],
                                     length)
    centres = [(w.start + w.stop) / 2 for w in windows]
    x = [c / fps for c in centres] if fps else centres
    classes, series = timeline_series([w.probs for w in windows], args.topk)
    return dict(
        window_length=length, stride=args.stride or length,
        windows=[w.as_dict(fps) for w in windows],
        timeline=dict(png=args.timeline, x=x,
                      xlabel='time (s)' if fps else 'frame',
                      classes=classes, probs=series.tolist()),
        lines_of_frame=lambda i: lines[owner[i]])


class WindowLog:
    """Classified windows appended (and flushed to disk) to ``path`` as
    they come; ``resume`` reads the windows of an earlier run, else an
    existing log is an error (its work is never overwritten)."""

    def __init__(self, path: str, resume: bool) -> None:
        import numpy as np

        from vivit_mm.deploy.bulk import read_json_lines
        from vivit_mm.deploy.prediction import Window
        self.path, self.windows = path, {}
        if os.path.exists(path) and not resume:
            raise ValueError(f'{path} holds the windows of an earlier run: '
                             'add --resume to continue it, or delete it.')
        if resume and os.path.exists(path):
            for r in read_json_lines(path):  # up to a line cut by a kill
                self.windows[r['index']] = Window(
                    r['index'], r['start'], r['stop'], r['frame_inds'],
                    np.asarray(r['probs'], dtype=np.float32))
            print(f'--resume: {len(self.windows)} windows already done.')

    def add(self, w) -> None:
        from vivit_mm.deploy.bulk import append_json_line
        append_json_line(self.path, w.as_dict())


def plot(timeline: dict, names: List[str]) -> None:
    """The timeline PNG; skipped with a message without matplotlib."""
    import numpy as np

    from vivit_mm.visualization.prediction_video import plot_timeline
    try:
        plot_timeline(timeline['png'], timeline['x'], timeline['classes'],
                      np.asarray(timeline['probs']), names,
                      xlabel=timeline['xlabel'])
    except ImportError as e:
        print(f'Timeline skipped: {e}', file=sys.stderr)
        timeline['png'] = None
        return
    print(f'Timeline written to {timeline["png"]}')


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the demo; returns what ``--out-json`` writes."""
    args = parse_args(argv)
    sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..',
                                'tools'))
    from vivit_cli.threads import prepare_openmp, setup_inference_threads
    prepare_openmp()  # before torch loads
    import torch
    from mmaction.apis import init_recognizer
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from vivit_mm.models.utils.load_checks import (CheckpointMisfitError,
                                                   configure_load_checks)

    from vivit_mm.deploy.loading import class_names

    import vivit_mm  # noqa: F401  registers models, transforms, hooks
    from vivit_mm.visualization import prediction_video as pv
    try:  # before the model is built
        if args.out_filename:
            pv.out_format(args.out_filename)
        reader = pv.open_video(args.video)
        fps = args.fps or pv.video_fps(reader)
        if args.out_filename and fps is None:
            raise ValueError(f'{args.video!r} has no frame rate: give --fps.')
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    print(setup_inference_threads().describe(), flush=True)
    device = args.device or ('cuda:0' if torch.cuda.is_available()
                             else 'cpu')
    model = init_recognizer(cfg, None, device='cpu')
    configure_load_checks(model, source=f'Checkpoint {args.checkpoint!r}')
    try:
        checkpoint = load_checkpoint(model, args.checkpoint,
                                     map_location='cpu')
    except CheckpointMisfitError as e:
        raise SystemExit(f'error: {e}') from None
    model.to(device)
    names = class_names(model, args.label_map, checkpoint.get('meta'))
    out = dict(video=args.video, num_frames=len(reader), fps=fps,
               classes=names)
    if args.sliding_window:
        try:
            out.update(sliding_windows(model, args, names, len(reader), fps))
        except ValueError as e:
            raise SystemExit(f'error: {e}') from None
        plot(out['timeline'], names)
    else:
        out.update(whole_video(model, args, names))
    lines_of_frame = out.pop('lines_of_frame')
    if args.out_filename:
        n = pv.write_prediction_video(reader, args.out_filename,
                                      lines_of_frame, fps)
        print(f'{n} annotated frames written to {args.out_filename}')
        out['out_filename'] = args.out_filename
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(out, f, indent=1)
        print(f'Probabilities written to {args.out_json}')
        if args.sliding_window:  # the final JSON holds every window
            os.remove(args.out_json + '.windows.jsonl')
    return out


if __name__ == '__main__':
    main()
