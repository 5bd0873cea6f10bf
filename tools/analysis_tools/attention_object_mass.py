"""How much of a ViViT's attention falls on the moving object of the
synthetic motion data set, against the object's area share.

    python tools/analysis_tools/attention_object_mass.py CONFIG CHECKPOINT \
        [--data-root data/synthetic_motion] [--split test] [--num-videos 40]

For each video of the split, every view of the config's test pipeline goes
through the model with its attention recording
(tools/visualizations/vis_attention.py draws the same maps); the object's
masks (re-drawn from the data set's meta.json, no noise or distractors) go
through the same frame sampling, resizes and crops. The ratio of a map is
``(share of its mass on the object) / (the object's share of the pixels)``:
1 means no preference. The same is printed for the config's freshly
initialised model as the baseline. Only the synthetic data set has masks.
"""
import argparse
import os.path as osp
import sys

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Attention mass on the moving object of the synthetic '
        'data set, relative to its area share')
    parser.add_argument('config', help='recognizer config file')
    parser.add_argument('checkpoint', help='recognizer checkpoint file')
    parser.add_argument('--data-root', default='data/synthetic_motion',
                        help='the synthetic data set (default '
                        'data/synthetic_motion)')
    parser.add_argument('--split', default='test',
                        choices=('train', 'val', 'test'))
    parser.add_argument('--num-videos', type=int, default=40,
                        help='first N videos of the split (default 40)')
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip the freshly initialised model')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (as tools/test.py)')
    args = parser.parse_args(argv)
    if args.num_videos < 1:
        parser.error(f'--num-videos must be >= 1, got {args.num_videos}')
    return args


def ratios(model, data_root, rels):
    """Map name -> the ratio of every view of every video in ``rels``."""
    from vivit_mm.datasets.synthetic import masks_of_file
    from vivit_mm.visualization.views import object_mass_ratios
    out = {}
    for rel in rels:
        got = object_mass_ratios(model, osp.join(data_root, rel),
                                 masks_of_file(data_root, rel))
        for name, values in got.items():
            out.setdefault(name, []).extend(values)
    return out


def summary(values):
    import numpy as np
    v = np.asarray(values)
    return dict(mean=float(v.mean()), median=float(np.median(v)),
                min=float(v.min()), max=float(v.max()), n=int(v.size))


def measure(model, data_root, split='test', num_videos=40, baseline=True):
    """``{'trained': {map: summary}, 'init': {...}}``; ``init`` is the same
    model re-initialised (its weights are lost, so it comes last)."""
    list_file = osp.join(data_root, f'{split}.txt')
    if not osp.isfile(list_file):
        raise FileNotFoundError(f'No {list_file}: generate the data set '
                                '(python tools/run_demo.py, or python -m '
                                'vivit_mm.datasets.synthetic).')
    with open(list_file) as f:
        rels = [line.split()[0] for line in f if line.strip()][:num_videos]
    result = {'trained': {k: summary(v) for k, v in
                          ratios(model, data_root, rels).items()}}
    if baseline:
        model.init_weights()
        result['init'] = {k: summary(v) for k, v in
                          ratios(model, data_root, rels).items()}
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.logging import MMLogger
    from vivit_mm.deploy.loading import load_recognizer
    try:
        model = load_recognizer(args.config, args.checkpoint,
                                args.cfg_options)
        MMLogger.get_current_instance().setLevel('WARNING')  # init logs
        result = measure(model, args.data_root, args.split, args.num_videos,
                         not args.no_baseline)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'{args.split} videos of {args.data_root}: attention mass on the '
          'object / its area share (1 = no preference)')
    for model_name, maps in result.items():
        for name, s in maps.items():
            print(f'{model_name:8s} {name:14s} mean {s["mean"]:.2f}  '
                  f'median {s["median"]:.2f}  min {s["min"]:.2f}  '
                  f'max {s["max"]:.2f}  ({s["n"]} views)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
