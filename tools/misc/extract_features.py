"""Extract ViViT video features: the backbone's pooled clip feature, or the
final token grid, averaged over the config's test views.

    python tools/misc/extract_features.py CONFIG CHECKPOINT INPUT --out FILE
        [--tokens] [--data-prefix DIR] [--device cpu] [--cfg-options ...]

INPUT is a video file or an MMAction2 list file (``relative/path.mp4 label``
lines, paths relative to ``--data-prefix``, default the list's folder).

Without ``--tokens``: ``[D]`` per video, the pooled backbone feature (what
the head classifies) of each test view (e.g. 4 clips x 3 crops) averaged.
With ``--tokens``: ``[n_t, n_h, n_w, D]`` per video, the final-normed tokens
without the CLS token, averaged over the views (Model 2: the spatial
encoder's tokens of each temporal index). See docs/deployment.md.

``--out`` ``.npz``: arrays ``features`` ``[num_videos, ...]`` and ``names``
(the list's paths, or the video's file name), ``skipped`` and
``skipped_reasons``; ``.npy``: one video's array.

The job keeps its work: each video's features are written to ``OUT.parts/``
as soon as they are computed, with a progress line (k/N, rate, time left).
A stopped or killed job continues with ``--resume``. An unreadable video
stops the job, naming the file, with the finished work kept;
``--skip-bad-videos`` records it (and why) in the output instead, and the
exit status is then 3. See docs/reliability.md.
"""
import argparse
import os
import sys

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract ViViT clip (pooled [D]) or token '
        '([n_t, n_h, n_w, D]) features, averaged over the test views')
    parser.add_argument('config', help='recognizer config file')
    parser.add_argument('checkpoint', help='recognizer checkpoint file')
    parser.add_argument('input', help='a video file, or an MMAction2 list '
                        'file of "relative/path.mp4 label" lines')
    parser.add_argument('--out', required=True,
                        help='.npz (features + names) or .npy (one video)')
    parser.add_argument('--tokens', action='store_true',
                        help='the final token grid [n_t, n_h, n_w, D] '
                        'instead of the pooled feature [D]')
    parser.add_argument('--data-prefix', help='folder the list\'s paths are '
                        'relative to (default: the list\'s folder)')
    parser.add_argument('--device', default='cpu',
                        help='torch device (default cpu)')
    parser.add_argument('--resume', action='store_true',
                        help='continue a stopped or killed run from the '
                        'videos it finished (OUT.parts/)')
    parser.add_argument('--skip-bad-videos', action='store_true',
                        help='record unreadable videos as skipped (in the '
                        'output and the summary; exit status 3) instead of '
                        'stopping')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (as tools/test.py)')
    args = parser.parse_args(argv)
    if not args.out.endswith(('.npy', '.npz')):
        parser.error(f'--out must end in .npy or .npz, got {args.out!r}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_mm.datasets.video_errors import VideoReadError
    from vivit_mm.deploy import bulk
    from vivit_mm.deploy.features import (compose_test_pipeline,
                                          video_feature, read_video_list)
    from vivit_mm.deploy.loading import load_recognizer
    try:
        if args.input.lower().endswith(VIDEO_EXTENSIONS):
            if not os.path.isfile(args.input):
                raise FileNotFoundError(
                    f'Video {args.input!r} does not exist.')
            videos = [(args.input, os.path.basename(args.input))]
        else:
            videos = read_video_list(args.input, args.data_prefix)
        if args.out.endswith('.npy') and len(videos) != 1:
            raise ValueError(f'{args.input} names {len(videos)} videos; a '
                             '.npy --out holds one, use .npz.')
        job = bulk.job_identity(
            config=os.path.abspath(args.config),
            checkpoint=os.path.abspath(args.checkpoint),
            tokens=args.tokens, cfg_options=args.cfg_options,
            videos=[path for path, _ in videos])
        store = bulk.PartsStore(args.out, job, resume=args.resume)
        if args.resume:
            print(f'--resume: {len(store.records)} of {len(videos)} videos '
                  f'already done ({len(store.skipped())} skipped), kept in '
                  f'{store.dir}.')
        model = load_recognizer(args.config, args.checkpoint,
                                args.cfg_options, device=args.device)
        pipeline = compose_test_pipeline(model.cfg)

        def compute(path):
            return video_feature(model, path, pipeline, tokens=args.tokens)

        summary = bulk.run_videos(
            videos, compute, store, skip_bad=args.skip_bad_videos,
            bad_errors=(FileNotFoundError, VideoReadError),
            progress=bulk.Progress(len(videos), len(store.records)))
    except (FileNotFoundError, FileExistsError, ValueError,
            bulk.BadVideoStop) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    shape, skipped = store.assemble()
    kind = 'token' if args.tokens else 'clip'
    print(f'wrote {args.out}: {kind} features {list(shape)} of '
          f'{len(videos) - skipped} video(s), '
          f'{type(model.backbone).__name__}'
          + (f' ({summary.resumed} from the earlier run)'
             if summary.resumed else '') + '.')
    for record in summary.skipped:
        print(f'skipped {record["name"]}: {record["reason"]}',
              file=sys.stderr)
    if skipped:
        print(f'{skipped} of {len(videos)} videos skipped (listed in '
              f'{args.out}: skipped, skipped_reasons); exit status '
              f'{bulk.EXIT_SKIPPED}.', file=sys.stderr)
        return bulk.EXIT_SKIPPED
    return 0


if __name__ == '__main__':
    sys.exit(main())
