"""onnxruntime (CPU) against eager PyTorch on the same ViViT graphs.

    python tools/analysis_tools/benchmark_onnx.py CONFIG [CONFIG ...] \
        [--layers 4] [--frames 16] [--batch 1] [--threads N] [--iters 5]

Each config's recognizer (random weights: the speed does not depend on their
values) is exported with tools/deployment/export_onnx.py's exporter into a
temporary folder, checked against PyTorch, then both run forward on the same
normalised input, alternating call by call (vivit_bench.measure
.time_interleaved), with the same number of intra-op threads. It prints the
median milliseconds per call, clips/s, the speed-up and the largest logit
difference, with the load average before and after. ``--layers`` and
``--frames`` shrink the backbone (0: the config's own) so that a CPU run
stays short.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

# The measuring code (vivit_bench) lives beside this script.
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='onnxruntime CPU vs eager PyTorch forward time of ViViT '
        'recognizers, interleaved')
    parser.add_argument('configs', nargs='+', help='recognizer config files')
    parser.add_argument('--layers', type=int, default=4,
                        help='backbone blocks (Model 2: spatial blocks); '
                        "0 = the config's (default 4)")
    parser.add_argument('--frames', type=int, default=16,
                        help="input frames; 0 = the config's (default 16)")
    parser.add_argument('--batch', type=int, default=1,
                        help='clips per call (default 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='intra-op threads of both (default: torch\'s '
                        'current number)')
    parser.add_argument('--iters', type=int, default=5,
                        help='timed rounds (default 5, after 1 warm-up)')
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config, key=value')
    args = parser.parse_args(argv)
    for name in ('layers', 'frames'):
        if getattr(args, name) < 0:
            parser.error(f'--{name} must be >= 0')
    if args.batch < 1 or args.iters < 1 or (args.threads or 1) < 1:
        parser.error('--batch, --iters and --threads must be >= 1')
    return args


def build(config, args):
    """The recognizer of ``config``, shrunk as the arguments say."""
    from mmaction.apis import init_recognizer
    from vivit_mm.deploy.loading import load_config
    cfg = load_config(config, args.cfg_options)
    backbone = cfg.model.backbone
    if args.layers:
        arch = backbone.get('arch', 'b')
        from vivit_mm.models.backbones.base import BaseViViT
        arch = dict(BaseViViT.parse_arch(arch), num_layers=args.layers)
        backbone.arch = arch
    if args.frames:
        backbone.num_frames = args.frames
    model = init_recognizer(cfg, None, device='cpu')
    return model.eval()


def bench(config, args, folder):
    """One config: ``dict(name, shape, torch_s, ort_s, max_diff)``."""
    import numpy as np
    import torch
    from vivit_bench.measure import median, time_interleaved
    from vivit_mm.deploy.onnx import (INPUT_NAME, OUTPUT_NAME, check_onnx,
                                      export_onnx, input_shape,
                                      onnx_session, scores_model)
    import onnxruntime as ort
    model = build(config, args)
    path = osp.join(folder, osp.splitext(osp.basename(config))[0] + '.onnx')
    export_onnx(model, path, opset=args.opset, batch=args.batch)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts,
                                   providers=['CPUExecutionProvider'])
    onnx_session(path)  # onnx.checker too
    diff = check_onnx(path, model, batch=args.batch, session=session)
    net = scores_model(model)
    x = torch.randn(input_shape(model, args.batch))
    feed = {INPUT_NAME: x.numpy()}

    def eager():
        with torch.no_grad():
            net(x)

    times = time_interleaved(
        {'torch': eager,
         'onnxruntime': lambda: session.run([OUTPUT_NAME], feed)},
        iters=args.iters, warmup=1)
    b = model.backbone
    return dict(name=f'{type(b).__name__} {b.num_layers}L',
                shape='x'.join(map(str, input_shape(model, args.batch))),
                torch_s=median(times['torch']),
                ort_s=median(times['onnxruntime']),
                max_diff=diff, rounds=times,
                spread=float(np.ptp(times['torch']) /
                             median(times['torch'])))


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from vivit_mm.utils.optional import MissingDependency, require
    try:
        require('onnx', 'onnxruntime', 'onnxscript',
                purpose='benchmark_onnx.py')
    except MissingDependency as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    import onnxruntime
    from vivit_bench.measure import load_average
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, onnxruntime '
          f'{onnxruntime.__version__}, {torch.get_num_threads()} intra-op '
          f'threads, {os.cpu_count()} CPUs; load average '
          f'{load_average():.2f}')
    print(f'{"model":16s} {"input":18s} {"torch ms":>9s} {"ORT ms":>9s} '
          f'{"ORT/torch":>9s} {"max |diff|":>10s}')
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for config in args.configs:
            try:
                r = bench(config, args, folder)
            except (ValueError, FileNotFoundError) as e:
                print(f'error: {config}: {e}', file=sys.stderr)
                return 2
            results.append(r)
            print(f'{r["name"]:16s} {r["shape"]:18s} '
                  f'{r["torch_s"] * 1e3:9.2f} {r["ort_s"] * 1e3:9.2f} '
                  f'{r["torch_s"] / r["ort_s"]:8.2f}x '
                  f'{r["max_diff"]:10.1e}', flush=True)
    print(f'load average after: {load_average():.2f} (medians of '
          f'{args.iters} interleaved rounds; ORT/torch > 1: onnxruntime '
          'faster)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
