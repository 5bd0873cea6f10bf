"""Rewrite a trusted legacy mmengine checkpoint so that it loads with
``torch.load(weights_only=True)``.

    python tools/misc/convert_legacy_checkpoint.py IN OUT --trust-source

Checkpoints that mmengine saved without vivit_mm imported pickle their log
history (``HistoryBuffer``) with method objects rebuilt through
``builtins.getattr``, which a weights-only load refuses, as it must. This
tool reads IN with the full pickle machinery, which CAN RUN CODE hidden in
the file: use it only on files you created or otherwise trust, which is why
``--trust-source`` is required. It then writes OUT with plain data only and
checks that OUT loads with vivit_mm's safe loader.
"""
import argparse
import os
import sys



def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='legacy checkpoint (trusted)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--trust-source',
        action='store_true',
        help='confirm that SRC comes from a trusted source: reading it '
        'unpickles arbitrary objects and can run code')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    import vivit_mm  # noqa: F401  allow-lists PlainHistoryBuffer
    from vivit_mm.compat import to_weights_only
    from vivit_mm.convert.io import safe_load
    if not os.path.isfile(args.src):
        print(f'{args.src!r} does not exist.', file=sys.stderr)
        return 2
    try:
        safe_load(args.src)
        print(f'{args.src} already loads with weights_only=True; '
              'nothing to convert.')
        return 0
    except ValueError:
        pass
    if not args.trust_source:
        print('Refusing: reading a legacy checkpoint can run code hidden in '
              'it. Pass --trust-source only for files you trust.',
              file=sys.stderr)
        return 2
    ckpt = torch.load(args.src, map_location='cpu', weights_only=False)
    torch.save(to_weights_only(ckpt), args.dst)
    try:
        safe_load(args.dst)
    except ValueError as e:
        os.remove(args.dst)
        print(f'Could not convert: {e}', file=sys.stderr)
        return 1
    print(f'Wrote {args.dst}; it loads with weights_only=True.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
