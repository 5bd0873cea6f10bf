"""Write a vivit_mm Model 1 recognizer as a HuggingFace model folder
(``config.json`` + ``model.safetensors``) that
``transformers.VivitForVideoClassification.from_pretrained`` loads.

Example::

    python tools/convert/vivit_to_hf.py work_dirs/my_vivit/best.pth \
        work_dirs/my_vivit/my_vivit.py hf_export/my-vivit

Only Model 1 with a CLS token (``pooling='token'``) has a HuggingFace
counterpart. ``--layout 4.x`` writes the key names of transformers 4.x.
"""
import argparse
import sys

from vivit_mm.convert import export_hf_model_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint', help='MMAction2 checkpoint (.pth)')
    p.add_argument('config', help='its MMAction2 config (.py)')
    p.add_argument('out_dir', help='output HuggingFace model folder')
    p.add_argument('--layout', choices=('4.x', '5.x'), default='5.x',
                   help='transformers key layout (default: 5.x)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = export_hf_model_dir(args.checkpoint, args.config, args.out_dir,
                                  layout=args.layout)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f"Wrote {args.out_dir}: VivitForVideoClassification, "
          f"{cfg['num_hidden_layers']} layers, {cfg['hidden_size']} wide, "
          f"{len(cfg['id2label'])} classes ({args.layout} layout).")
    return 0


if __name__ == '__main__':
    sys.exit(main())
