"""The fine-tuning config that ``tools/data/build_video_lists.py --config``
writes: a child of the user's base config that trains on the written lists.

It is plain Python text with a header comment, meant to be read and edited.
Each data loader's innermost data set (inside wrappers such as
``ReproducibleDataset``) is replaced by an MMAction2 ``VideoDataset`` over a
list, keeping the base config's pipeline (referenced as
``_base_.train_pipeline`` etc. when the base defines it under that name);
the head gets the class count, the data sets' ``metainfo`` and the config's
``label_names`` the class names (checkpoints then carry them in
``meta.dataset_meta.classes``; the demo and ``tools/test.py`` read either).
"""
import os.path as osp
import pprint
from typing import List, Optional, Sequence

#: Written when the base config sets no layer decay (1.0 switches it off).
DEFAULT_LAYER_DECAY = 0.75
CONSTRUCTOR = 'ViViTLayerDecayOptimWrapperConstructor'
LOADERS = (('train', 'train_dataloader', 'ann_file_train'),
           ('val', 'val_dataloader', 'ann_file_val'),
           ('test', 'test_dataloader', 'ann_file_test'))


def _depth(loader) -> Optional[int]:
    """How many wrappers sit above the innermost data set of a loader."""
    ds, depth = loader.get('dataset'), 0
    if not isinstance(ds, dict):
        return None
    while isinstance(ds.get('dataset'), dict):
        ds, depth = ds['dataset'], depth + 1
    return depth


def _inner(loader):
    ds = loader['dataset']
    while isinstance(ds.get('dataset'), dict):
        ds = ds['dataset']
    return ds


def _pipeline_source(base, split: str, pipeline) -> str:
    name = f'{split}_pipeline'
    if base.get(name) == pipeline:
        return f'_base_.{name}'
    return pprint.pformat(pipeline, indent=1, width=72).replace('\n',
                                                                '\n' + ' ' * 8)


def check_base(base, base_path: str) -> None:
    """Raise ``ValueError`` unless ``base`` is a recognizer config with a
    classification head and train/val data loaders."""
    head = base.get('model', {}).get('cls_head')
    if not isinstance(head, dict) or 'num_classes' not in head:
        raise ValueError(f'--config {base_path}: not a recognizer config '
                         'with model.cls_head.num_classes; pass one of '
                         'configs/vivit_*.py (e.g. configs/vivit_m2_'
                         'finetune.py).')
    for _, key, _ in LOADERS[:2]:
        if key not in base or _depth(base[key]) is None:
            raise ValueError(f'--config {base_path}: it has no {key} with a '
                             'dataset; pass a training config.')


def finetune_config_text(base, base_path: str, video_dir: str,
                         out_dir: str, classes: Sequence[str],
                         counts: dict, load_from: Optional[str] = None,
                         layer_decay: Optional[float] = None) -> str:
    """The text of ``finetune.py``.

    Args:
        base (Config): The base config, loaded.
        base_path (str): Its file (written as an absolute ``_base_`` path).
        video_dir (str): The data root (absolute in the file).
        out_dir (str): Where the lists are (absolute in the file).
        classes (Sequence[str]): Class names, by label.
        counts (dict): ``{split: number of videos}``; ``test`` 0 = no test
            list (the test loader then reads the validation list).
        load_from (str, optional): Checkpoint to start from.
        layer_decay (float, optional): ``layer_decay_rate``; default: the
            base config's, else ``DEFAULT_LAYER_DECAY``.
    """
    check_base(base, base_path)
    if layer_decay is None:
        pw = base.get('optim_wrapper', {}).get('paramwise_cfg') or {}
        layer_decay = pw.get('layer_decay_rate', DEFAULT_LAYER_DECAY)
    has_test = counts.get('test', 0) > 0
    lists = {s: osp.join(out_dir, f'{s}.txt') for s in ('train', 'val')}
    lists['test'] = osp.join(out_dir, 'test.txt') if has_test else lists['val']
    total = sum(counts.values())
    lines: List[str] = [
        '# Fine-tuning config written by tools/data/build_video_lists.py.',
        f'# Videos: {video_dir}',
        f'# {len(classes)} classes; {counts["train"]} training, '
        f'{counts["val"]} validation'
        + (f', {counts["test"]} test' if has_test else '')
        + f' videos ({total} in all).',
        '# Everything else (model, pipelines, schedule, runtime) comes from',
        '# the base config; override any key here. Guide: docs/finetune.md.',
        f'_base_ = {osp.abspath(base_path)!r}',
        '',
        f'data_root = {osp.abspath(video_dir)!r}',
    ]
    for split, _, var in LOADERS:
        lines.append(f'{var} = {osp.abspath(lists[split])!r}'
                     + ('  # no test split: the validation list'
                        if split == 'test' and not has_test else ''))
    lines += ['', '# Label i is line i of classes.txt; checkpoints carry '
              'these names', '# (metainfo below) and the demo shows them.',
              'label_names = ['] + [f'    {c!r},' for c in classes] + [']']
    lines.append('num_classes = len(label_names)')
    if load_from:
        lines += ['', '# Start from these weights; a head of another class '
                  'count is new (trained from scratch).',
                  f'load_from = {osp.abspath(load_from)!r}']
    elif base.get('load_from'):
        lines += ['', '# load_from: the base config\'s, '
                  f'{base.load_from!r};',
                  '# set it here (None: start without it).']
    model = base.model
    frozen = model.get('backbone', {}).get('frozen_stages', 0)
    blending = (model.get('data_preprocessor') or {}).get('blending')
    lines += [
        '', 'model = dict(',
        '    # Freeze the tokeniser, CLS/position tables and the first N '
        'blocks',
        '    # (Model 2: spatial, then temporal ones; 0 = none). '
        'docs/finetune.md',
        f'    backbone=dict(frozen_stages={int(frozen or 0)}),']
    if isinstance(blending, dict) and 'num_classes' in blending:
        lines.append('    data_preprocessor=dict(blending=dict('
                     'num_classes=num_classes)),')
    lines += ['    cls_head=dict(num_classes=num_classes))']
    lines += [
        '',
        '# Layer-wise learning-rate decay: a parameter at depth d of L gets '
        'lr * rate',
        '# ** (L - 1 - d): the head the full lr, the tokeniser the least '
        '(backbone',
        '# get_layer_depth); 1.0 = off.',
        f'layer_decay_rate = {float(layer_decay)!r}',
        'optim_wrapper = dict(',
        f'    constructor={CONSTRUCTOR!r},',
        '    paramwise_cfg=dict(layer_decay_rate=layer_decay_rate))',
    ]
    for split, key, var in LOADERS:
        if key not in base or _depth(base[key]) is None:
            continue
        inner = _inner(base[key])
        depth = _depth(base[key])
        pipe = _pipeline_source(base, split, inner.get('pipeline'))
        body = [
            "type='VideoDataset',", 'data_root=data_root,',
            f'ann_file={var},', "data_prefix=dict(video=''),",
            'metainfo=dict(classes=label_names),', f'pipeline={pipe},']
        if inner.get('test_mode'):
            body.append('test_mode=True,')
        lines += ['', f'{key} = dict(']
        indent = '    '
        for _ in range(depth + 1):
            lines.append(f'{indent}dataset=dict(')
            indent += '    '
        lines.append(f'{indent}_delete_=True,')
        lines += [indent + b for b in body]
        lines[-1] = lines[-1].rstrip(',') + ')' * (depth + 2)
    return '\n'.join(lines) + '\n'
