"""Export a ViViT recognizer (backbone + cls_head) to ONNX and check it with
onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out MODEL.onnx
        [--dynamic-batch] [--opset 18] [--atol 1e-4] [--cfg-options k=v ...]

The graph's input ``video`` is float32 ``[N, C, T, H, W]`` AFTER the data
preprocessor's normalisation (``(pixels - mean) / std`` with the config's
mean/std already applied); T, H, W are the config's num_frames and img_size.
Its output ``scores`` is ``[N, num_classes]``: the head's logits per clip,
before ``average_clips``. See docs/deployment.md.

The config and checkpoint are checked before anything is exported (a ViViT
backbone; checkpoint names and shapes equal to the config's model). After the
export the graph is run by onnxruntime (CPU) on a random input and compared
with eager PyTorch; the tool exits with status 1 if the largest absolute
difference exceeds ``--atol`` or the graph does not load.
"""
import argparse
import sys

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction

CONTRACT = ("input 'video': float32 [N, C, T, H, W] AFTER the data "
            "preprocessor's normalisation ((pixels - mean) / std with the "
            "config's mean/std applied), T/H/W fixed by the config; output "
            "'scores': [N, num_classes] logits before average_clips")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a ViViT recognizer (backbone + cls_head) to ONNX '
        'and check it against PyTorch with onnxruntime. Graph ' + CONTRACT +
        '.')
    parser.add_argument('config', help='recognizer config file')
    parser.add_argument('checkpoint', help='recognizer checkpoint file')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument(
        '--dynamic-batch', action='store_true',
        help='symbolic batch axis N (default: N fixed to --batch)')
    parser.add_argument('--batch', type=int, default=1,
                        help='the fixed batch size without --dynamic-batch '
                        '(default 1)')
    parser.add_argument('--opset', type=int, default=18,
                        help='ONNX opset, >= 18 (torch dynamo exporter; '
                        'default 18)')
    parser.add_argument(
        '--atol', type=float, default=1e-4,
        help='largest allowed |onnxruntime - PyTorch| of the logits on a '
        'random input (default 1e-4)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (as tools/test.py)')
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f'--batch must be >= 1, got {args.batch}')
    if args.opset < 18:
        parser.error(f'--opset must be >= 18 (the lowest opset of torch\'s '
                     f'dynamo ONNX exporter), got {args.opset}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from vivit_mm.utils.optional import MissingDependency, require
    try:  # before any work
        require('onnx', 'onnxruntime', 'onnxscript', purpose='export_onnx.py')
    except MissingDependency as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    from vivit_mm.deploy.loading import load_recognizer
    from vivit_mm.deploy.onnx import check_onnx, export_onnx
    try:
        model = load_recognizer(args.config, args.checkpoint,
                                args.cfg_options)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        print('Nothing was exported.', file=sys.stderr)
        return 2
    info = export_onnx(model, args.out, opset=args.opset,
                       dynamic_batch=args.dynamic_batch, batch=args.batch)
    print(f'wrote {info["path"]} (opset {info["opset"]}, '
          f'{info["exporter"]}'
          + (', weights in an external .data file' if info['external_data']
             else '') + ')')
    print(f'  backbone: {type(model.backbone).__name__}, head: '
          f'{type(model.cls_head).__name__}')
    print(f'  input  {info["input_name"]!r}: {info["input_shape"]} float32, '
          'AFTER normalisation: (pixels - mean) / std with the config\'s '
          f'mean {list(model.data_preprocessor.mean.flatten().tolist())} '
          f'std {list(model.data_preprocessor.std.flatten().tolist())}')
    print(f'  output {info["output_name"]!r}: {info["output_shape"]} logits '
          'per clip, before average_clips')
    try:
        diffs = [check_onnx(info['path'], model, batch=b)
                 for b in ((1, 3) if args.dynamic_batch else (None, ))]
    except Exception as e:  # noqa: BLE001  (any failure to load or run)
        print(f'error: onnxruntime could not run {info["path"]}: '
              f'{type(e).__name__}: {e}', file=sys.stderr)
        return 1
    diff = max(diffs)
    print(f'  onnxruntime (CPU) vs PyTorch, random input: max |diff| = '
          f'{diff:.3g} (atol {args.atol:g})')
    if not diff <= args.atol:
        print(f'error: the exported graph {info["path"]} differs from '
              f'PyTorch by {diff:.3g} > --atol {args.atol:g}; do not use it.',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
