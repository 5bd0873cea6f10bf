"""Convert a local HuggingFace ViViT model folder into an MMAction2
checkpoint and config for vivit_mm.

Example::

    huggingface-cli download google/vivit-b-16x2-kinetics400 \
        --local-dir checkpoints/hf/vivit-b-16x2-kinetics400
    python tools/convert/hf_to_vivit.py \
        checkpoints/hf/vivit-b-16x2-kinetics400 \
        checkpoints/vivit_m1_b16x2_k400_hf.pth \
        --out-config configs/converted/vivit_m1_b16x2_k400_hf.py

Both transformers 4.x and 5.x key layouts are read (detected from the
keys). The config holds the class names (``label_names``) when the
HuggingFace config has real ones.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vivit_cli.convert_args import (add_test_config_args,  # noqa: E402
                                    test_config_kwargs, write_label_map)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='local HuggingFace model folder (config.json '
                   'and model.safetensors or pytorch_model.bin)')
    p.add_argument('out', help='output MMAction2 checkpoint (.pth)')
    p.add_argument('--out-config', required=True,
                   help='output MMAction2 config (.py)')
    p.add_argument('--normalisation', choices=('official', 'processor'),
                   default='official',
                   help="'official': inputs in [-1, 1] as the official "
                   "models were trained (default); 'processor': reproduce "
                   "the folder's preprocessor_config.json")
    p.add_argument('--out-label-map', default=None,
                   help='also write the class names, one per line')
    add_test_config_args(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_mm.utils.optional import require_or_exit
    if any(os.path.isfile(os.path.join(args.src, f)) for f in
           ('model.safetensors', 'model.safetensors.index.json')):
        require_or_exit('safetensors', purpose='hf_to_vivit.py (reading '
                        'model.safetensors)')
    from vivit_mm.convert import convert_hf_model_dir
    try:
        cfg = convert_hf_model_dir(args.src, args.out, args.out_config,
                                   normalisation=args.normalisation,
                                   **test_config_kwargs(args))
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    names = cfg.get('label_names')
    if args.out_label_map:
        if not names:
            print('error: the HuggingFace config has no class names to '
                  'write', file=sys.stderr)
            return 1
        write_label_map(names, args.out_label_map)
    bb = cfg['model']['backbone']
    print(f"Wrote {args.out} and {args.out_config}: {bb['type']} "
          f"arch={bb['arch']}, {bb['num_frames']} frames at "
          f"{bb['img_size']}, {cfg['model']['cls_head']['num_classes']} "
          'classes.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
