"""Classify one video with a ViViT recognizer and print the top-k classes.

    python demo/demo.py VIDEO CONFIG CHECKPOINT [--label-map LABELS.txt]

The class names come from ``--label-map`` (one name per line, in label
order; for Kinetics-400 MMAction2's tools/data/kinetics/label_map_k400.txt),
else from the checkpoint's ``meta.dataset_meta.classes`` or the config's
``label_names`` (converted official and HuggingFace checkpoints carry them),
else the class indices are printed. The config's test pipeline (e.g. 4 clips
x 3 crops for the Kinetics configs) is applied and the per-view scores are
averaged as the config's head says.
"""
import argparse
from typing import List, Optional, Sequence, Tuple

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Top-k classes of a video with a ViViT recognizer')
    parser.add_argument('video', help='video file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--label-map', default=None,
        help='class names, one per line (default: the names the checkpoint '
        'or the config carries, else class indices)')
    parser.add_argument(
        '--topk', type=int, default=5, help='number of classes to print')
    parser.add_argument(
        '--device', default=None,
        help='device, e.g. cpu or cuda:0 (default: cuda:0 if available)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.test_cfg.max_testing_views=1')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def read_label_map(path: str, num_classes: int) -> List[str]:
    """Read class names, one per line; there must be ``num_classes``."""
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != num_classes:
        raise ValueError(f'--label-map {path!r} has {len(names)} class names '
                         f'but the model predicts {num_classes} classes.')
    return names


def class_names(model, label_map: Optional[str],
                meta: Optional[dict] = None) -> List[str]:
    """``--label-map``, else the checkpoint's (``meta``) or the config's
    class names, else the indices as strings."""
    num_classes = model.cfg.model.cls_head.num_classes
    if label_map:
        return read_label_map(label_map, num_classes)
    dataset_meta = (meta or {}).get('dataset_meta') or {}
    for names in (dataset_meta.get('classes'),
                  model.cfg.get('label_names')):
        if names and len(names) == num_classes:
            return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def scores_of(result):
    """Averaged class scores of an ``ActionDataSample`` (MMAction2 1.1's
    ``pred_scores.item`` or 1.2's ``pred_score``)."""
    if 'pred_score' in result:
        return result.pred_score
    return result.pred_scores.item


def top_k(model, video: str, k: int) -> Tuple:
    """Probabilities and indices of the ``k`` best classes for ``video``."""
    from mmaction.apis import inference_recognizer
    scores = scores_of(inference_recognizer(model, video)).float().cpu()
    if model.cfg.model.cls_head.get('average_clips') != 'prob':
        scores = scores.softmax(-1)  # averaged logits -> probabilities
    return scores.topk(min(k, scores.numel()))


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    import torch
    from mmaction.apis import init_recognizer
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    import vivit_mm  # noqa: F401  registers models, transforms, hooks
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    device = args.device or ('cuda:0' if torch.cuda.is_available()
                             else 'cpu')
    model = init_recognizer(cfg, None, device='cpu')
    checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(device)
    names = class_names(model, args.label_map, checkpoint.get('meta'))
    probs, idx = top_k(model, args.video, args.topk)
    print(f'Top-{len(idx)} classes of {args.video}:')
    for rank, (p, i) in enumerate(zip(probs.tolist(), idx.tolist()), 1):
        print(f'{rank}. {names[i]} ({p:.4f})')


if __name__ == '__main__':
    main()
