"""Build MMAction2 video lists (and a fine-tuning config) from a folder of
class sub-folders of videos.

    python tools/data/build_video_lists.py VIDEO_DIR --out-dir DIR
        [--val-fraction 0.2] [--test-fraction 0] [--seed 0]
        [--config BASE_CONFIG] [--load-from CKPT]

VIDEO_DIR holds one sub-folder per class (torchvision's and HuggingFace's
"video folder" layout). Writes DIR/train.txt, DIR/val.txt (DIR/test.txt with
--test-fraction > 0), one ``relative/path.mp4 label`` line per video, and
DIR/classes.txt (the sorted class names; the label is the line number,
from 0). The split is per class and depends only on the seed. Every video
is opened and its first and last frame decoded; unreadable, empty and
truncated files are listed with the reason and left out. With --config it
also writes DIR/finetune.py, a child of BASE_CONFIG that trains on the
lists (docs/finetune.md).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}')
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f'must be in [0, 1), got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Video lists, classes.txt and (with --config) a '
        'fine-tuning config from a folder of class sub-folders of videos')
    parser.add_argument('video_dir', help='folder with one sub-folder of '
                        'videos per class (the data root of the lists)')
    parser.add_argument('--out-dir', required=True,
                        help='where train.txt, val.txt, [test.txt], '
                        'classes.txt and finetune.py are written')
    parser.add_argument('--val-fraction', type=_fraction, default=0.2,
                        help='share of each class for validation (default '
                        '0.2; at least one video per class)')
    parser.add_argument('--test-fraction', type=_fraction, default=0.0,
                        help='share of each class for a test list (default '
                        '0: no test list)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the split (default 0)')
    parser.add_argument('--config', metavar='BASE_CONFIG',
                        help='also write DIR/finetune.py, a child of this '
                        'config (e.g. configs/vivit_m2_finetune.py)')
    parser.add_argument('--load-from', metavar='CKPT',
                        help='checkpoint the written config starts from '
                        '(load_from); needs --config')
    args = parser.parse_args(argv)
    if args.val_fraction <= 0:
        parser.error('--val-fraction must be > 0 (val.txt is always '
                     'written)')
    if args.val_fraction + args.test_fraction >= 1:
        parser.error('--val-fraction + --test-fraction must be < 1 (some '
                     'videos must be left for training)')
    if args.load_from and not args.config:
        parser.error('--load-from goes into the written config: pass '
                     '--config BASE_CONFIG too')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_cli import finetune_config, video_lists as vl
    try:
        return _run(args, vl, finetune_config)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1


def _run(args, vl, fc) -> int:
    out_dir = osp.abspath(args.out_dir)
    config_path = osp.join(out_dir, 'finetune.py')
    base = None
    if args.config:
        from mmengine.config import Config
        if osp.exists(config_path):
            raise ValueError(f'{config_path} exists; it may hold your edits. '
                             'Move it away or choose another --out-dir.')
        if not osp.isfile(args.config):
            raise ValueError(f'--config {args.config}: no such file.')
        if args.load_from and not osp.isfile(args.load_from):
            raise ValueError(f'--load-from {args.load_from}: no such file.')
        base = Config.fromfile(args.config)
        fc.check_base(base, args.config)

    classes = vl.find_classes(args.video_dir)
    found, refused = vl.find_videos(args.video_dir, classes)
    print(f'{sum(map(len, found.values()))} video files in {len(classes)} '
          f'class folders of {args.video_dir}; probing them ...')
    good, bad = vl.probe_all(args.video_dir, found)
    bad = sorted(refused + bad)
    left_out = {}
    for rel, _ in bad:
        cls = rel.split('/', 1)[0]
        left_out[cls] = left_out.get(cls, 0) + 1
    if bad:
        print(f'Left out {len(bad)} file(s):')
        for rel, reason in bad:
            print(f'  {rel}: {reason}')
    splits = vl.split_all(good, classes, args.seed, args.val_fraction,
                          args.test_fraction)
    print(vl.count_table(splits, classes, left_out))
    written = vl.write_lists(out_dir, splits, classes)
    if base is not None:
        counts = {s: len(v) for s, v in splits.items()}
        text = fc.finetune_config_text(
            base, args.config, args.video_dir, out_dir, classes, counts,
            load_from=args.load_from)
        tmp = config_path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, config_path)
        Config.fromfile(config_path)  # it loads, its _base_ included
        written.append(config_path)
    print('Wrote ' + ', '.join(written))
    return 0


if __name__ == '__main__':
    sys.exit(main())
