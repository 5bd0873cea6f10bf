"""Convert an official ViViT checkpoint (google-research/scenic, flax) into
an MMAction2 checkpoint and config for vivit_mm. No JAX needed.

Example (ViViT-B/16x2 factorised encoder, Kinetics-400)::

    python tools/convert/scenic_to_vivit.py \
        checkpoints/scenic/vivit_base_16x2_fe_k400/checkpoint \
        checkpoints/vivit_m2_b16x2_k400_scenic.pth \
        --out-config configs/converted/vivit_m2_b16x2_k400_scenic.py

Reads flax msgpack checkpoint files (or a folder of ``checkpoint_<step>``
files) and ``.npz`` trees with ``/``-joined keys. Models 1 and 2 are
detected from the parameter names; Models 3 and 4 are supported as scenic
names their parameters. A tree with Model 1/4 blocks and no CLS token needs
``--model 1`` or ``--model 4``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vivit_cli.convert_args import (add_test_config_args,  # noqa: E402
                                    test_config_kwargs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='flax msgpack checkpoint file, a folder of '
                   'checkpoint_<step> files, or an .npz tree')
    p.add_argument('out', help='output MMAction2 checkpoint (.pth)')
    p.add_argument('--out-config', required=True,
                   help='output MMAction2 config (.py)')
    p.add_argument('--model', type=int, choices=(1, 2, 3, 4), default=None,
                   help='ViViT model; detected when the names tell')
    p.add_argument('--img-size', type=int, default=None,
                   help='frame size the model was trained at (default: '
                   '224, or read from a Model 2 tree)')
    p.add_argument('--num-frames', type=int, default=None,
                   help='input frames (default: read from the position '
                   'table)')
    p.add_argument('--attention-order', default='time_space',
                   choices=('time_space', 'space_time'),
                   help="Model 3 only; not recorded in checkpoints "
                   "(default: time_space, scenic's default; note that "
                   "ViViTM3's own default is space_time)")
    p.add_argument('--classifier', default=None,
                   choices=('token', 'gap', 'gmp', 'gsp', '0'),
                   help="scenic's classifier the model was trained with "
                   "(default: token with a CLS token, else gap, scenic's "
                   "default); gmp, gsp and 0 have no vivit_mm pooling")
    p.add_argument('--single-head', action='store_true',
                   help='convert a classifier with the output count of a '
                   'multi-head release (Epic-Kitchens: 397 = 300 nouns + 97 '
                   'verbs) as one head; refused by default')
    p.add_argument('--label-map', default=None,
                   help='class names, one per line, in the order of the '
                   'classifier outputs')
    add_test_config_args(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_mm.utils.optional import require_or_exit
    if not args.src.endswith('.npz'):  # flax msgpack checkpoints
        require_or_exit('msgpack', purpose='scenic_to_vivit.py (flax '
                        'msgpack checkpoints)')
    from vivit_mm.convert import convert_scenic_checkpoint
    from vivit_mm.deploy.loading import read_label_map
    try:
        names = read_label_map(args.label_map) if args.label_map else None
        cfg, notes = convert_scenic_checkpoint(
            args.src, args.out, args.out_config, model=args.model,
            img_size=args.img_size, num_frames=args.num_frames,
            attention_order=args.attention_order,
            classifier=args.classifier, single_head=args.single_head,
            label_names=names,
            **test_config_kwargs(args))
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    bb = cfg['model']['backbone']
    print(f"Wrote {args.out} and {args.out_config}: {bb['type']} "
          f"arch={bb['arch']}, {bb['num_frames']} frames at "
          f"{bb['img_size']}, {cfg['model']['cls_head']['num_classes']} "
          'classes.')
    for note in notes:
        print(f'note: {note}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
