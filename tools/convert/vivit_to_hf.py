"""Write a vivit_mm Model 1 recognizer as a HuggingFace model folder
(``config.json`` + ``model.safetensors``) that
``transformers.VivitForVideoClassification.from_pretrained`` loads.

Example::

    python tools/convert/vivit_to_hf.py work_dirs/my_vivit/best.pth \
        work_dirs/my_vivit/my_vivit.py hf_export/my-vivit

Only Model 1 with a CLS token (``pooling='token'``) has a HuggingFace
counterpart. The default ``--layout 4.x`` key names are what transformers 5
itself writes on ``save_pretrained``, and both transformers 4 and 5 read
them; ``--layout 5.x`` writes transformers 5's module names.
"""
import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint', help='MMAction2 checkpoint (.pth)')
    p.add_argument('config', help='its MMAction2 config (.py)')
    p.add_argument('out_dir', help='output HuggingFace model folder')
    p.add_argument('--layout', choices=('4.x', '5.x'), default='4.x',
                   help='transformers key layout (default: 4.x, read by '
                   'transformers 4 and 5)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_mm.utils.optional import require_or_exit
    require_or_exit('safetensors', purpose='vivit_to_hf.py (writes '
                    'model.safetensors)')
    from vivit_mm.convert import export_hf_model_dir
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
