"""Start a ViViT backbone from an image ViT (paper section 3.4).

:func:`inflate_image_weights` reads an mmpretrain, timm or flax (original
ViT ``.npz``) checkpoint and writes it into any of the four ViViT variants,
in place:

- blocks, final norm: copied (Model 3: into the spatial attention; Model 2:
  into the spatial encoder; Model 4: unchanged);
- position embedding: the spatial table, resized when the grid differs, then
  repeated over time (time-major); the CLS entry is kept for
  ``pooling='token'`` and dropped for ``'gap'``; Model 2's spatial encoder
  takes it without tiling;
- patch embedding: copied for uniform frame sampling; for tubelets inflated
  by ``tubelet_init``;
- Model 3's temporal attention: its output projection zeroed (each block then
  starts as the image block), a copy of the image attention, or left as is;
- Model 2's temporal encoder: left as initialised, or taken from the first
  ``L_t`` image blocks;
- the classifier head is never taken.

Every key is accounted for in the returned :class:`InflationReport`.
"""
import os
import re
import textwrap
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from .models.backbones.base import BaseViViT
from .models.backbones.vivit_m2 import ViViTM2
from .models.backbones.vivit_m3 import ViViTM3
from .models.utils.pos_embed import (INTERPOLATIONS, resize_pos_embed_grid,
                                     split_extra_tokens, tile_pos_embed)
from .utils.checkpoint import safe_load

TUBELET_INITS = ('central_frame', 'average', 'random')
TEMPORAL_ATTN_INITS = ('zeros', 'copy', 'random')
TEMPORAL_ENCODER_INITS = ('random', 'image')
LAYOUTS = ('mmpretrain', 'timm', 'flax')

#: Parameters of one image block, in our names.
BLOCK_KEYS = tuple(f'{m}.{p}' for m in ('norm1', 'attn.qkv', 'attn.proj',
                                         'norm2', 'mlp.fc1', 'mlp.fc2')
                   for p in ('weight', 'bias'))

# (source pattern, canonical name) per layout; canonical names are ours with
# the patch embedding as ``patch_embed.{weight,bias}``.
_RULES = {
    'mmpretrain': [
        (r'patch_embed\.projection\.(weight|bias)', r'patch_embed.\1'),
        (r'(cls_token|pos_embed)', r'\1'),
        (r'layers\.(\d+)\.ln1\.(weight|bias)', r'layers.\1.norm1.\2'),
        (r'layers\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)',
         r'layers.\1.attn.\2.\3'),
        (r'layers\.(\d+)\.ln2\.(weight|bias)', r'layers.\1.norm2.\2'),
        (r'layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)',
         r'layers.\1.mlp.fc1.\2'),
        (r'layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)',
         r'layers.\1.mlp.fc2.\2'),
        (r'ln1\.(weight|bias)', r'norm.\1'),
    ],
    'timm': [
        (r'patch_embed\.proj\.(weight|bias)', r'patch_embed.\1'),
        (r'(cls_token|pos_embed)', r'\1'),
        (r'blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)', r'layers.\1.\2.\3'),
        (r'blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)',
         r'layers.\1.attn.\2.\3'),
        (r'blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)',
         r'layers.\1.mlp.\2.\3'),
        (r'norm\.(weight|bias)', r'norm.\1'),
    ],
}
# Blocks of each layout: a key inside a block that no rule maps changes what
# the block computes (layer scale, q/k norm, SwiGLU ...), so it is an error.
_BLOCK_PREFIX = {'mmpretrain': r'layers\.\d+\.', 'timm': r'blocks\.\d+\.'}
# Top-level keys that change the image model's function and have no place in
# ViViT.
_UNSUPPORTED = {
    'mmpretrain': {r'pre_norm\.': 'a LayerNorm before the blocks '
                                  '(pre_norm=True, CLIP-style)',
                   r'patch_embed\.norm\.': 'a norm in the patch embedding'},
    'timm': {r'norm_pre\.': 'a LayerNorm before the blocks (CLIP-style)',
             r'reg_token': 'register tokens',
             r'patch_embed\.norm\.': 'a norm in the patch embedding'},
}
_UNUSED_NOTES = {
    r'(backbone\.)?(head|neck|data_preprocessor|pre_logits)\b'
    r'|(cls_head|fc_cls)\b':
    'the classifier head is never taken from the image model',
    r'fc_norm\.': "timm's norm after average pooling; ViViT normalises "
                  'before pooling, so its final norm keeps its init',
    r'ln2\.': "mmpretrain's norm after average pooling (out_type="
              "'avg_featmap'); ViViT normalises before pooling",
}


@dataclass
class InflationReport:
    """Where every parameter of an inflated backbone came from.

    Attributes:
        layout (str): ``'mmpretrain'``, ``'timm'`` or ``'flax'``.
        loaded (list[str]): Backbone keys copied unchanged.
        inflated (list[str]): Backbone keys derived from image weights
            (tiled position embedding, inflated tubelet filter, copies into
            temporal attention or a temporal encoder).
        resized (list[str]): Backbone keys whose spatial grid was resized.
            A key can be both inflated and resized.
        new (list[str]): Backbone keys not taken from the image model: left
            as initialised, or set to a fixed value (see ``notes``).
        unused (list[str]): Checkpoint keys not used (the head, keys that
            ``tubelet_init='random'`` or ``pooling='gap'`` leave out ...).
        notes (dict[str, str]): Backbone key -> how it was set.
        unused_notes (dict[str, str]): Unused checkpoint key -> why.
    """
    layout: str
    loaded: List[str] = field(default_factory=list)
    inflated: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    new: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    notes: Dict[str, str] = field(default_factory=OrderedDict)
    unused_notes: Dict[str, str] = field(default_factory=OrderedDict)

    CATEGORIES = ('loaded', 'inflated', 'resized', 'new', 'unused')

    def table(self, width: int = 100) -> str:
        """A short text table: one row per category, layer indices folded
        (``layers.{0-11}.norm1.{weight,bias}``), then the notes."""
        rows = [(c, len(getattr(self, c)), fold_keys(getattr(self, c)))
                for c in self.CATEGORIES]
        head = f'Image ViT ({self.layout}) -> ViViT: parameter report'
        wrap = width - 22
        lines = [head, '-' * width]
        for name, n, keys in rows:
            chunks = textwrap.wrap(keys, wrap) or ['-']
            lines.append(f'{name:<10}| {n:>5} | {chunks[0]}')
            lines += [f'{"":<10}| {"":>5} | {c}' for c in chunks[1:]]
        lines.append('-' * width)
        for title, notes in (('backbone', self.notes),
                             ('unused checkpoint keys', self.unused_notes)):
            grouped: Dict[str, List[str]] = OrderedDict()
            for key, note in notes.items():
                grouped.setdefault(note, []).append(key)
            if grouped:
                lines.append(f'{title}:')
            for note, keys in grouped.items():
                lines += textwrap.wrap(f'{fold_keys(keys)}: {note}', width,
                                       initial_indent='  ',
                                       subsequent_indent='      ')
        return '\n'.join(lines)

    def __str__(self) -> str:
        return self.table()


def fold_keys(keys: Sequence[str]) -> str:
    """``layers.0.x.weight, layers.1.x.weight, layers.0.x.bias ...`` ->
    ``layers.{0-1}.x.{weight,bias}``, in first-seen order."""
    by_pattern: Dict[str, List[int]] = OrderedDict()
    for k in keys:
        m = re.search(r'layers\.(\d+)\.', k)
        pattern = k if m is None else \
            k[:m.start(1)] + '{}' + k[m.end(1):]
        by_pattern.setdefault(pattern, []).append(
            -1 if m is None else int(m.group(1)))
    folded: Dict[str, None] = OrderedDict()
    for pattern, idx in by_pattern.items():
        if idx == [-1]:
            folded[pattern] = None
            continue
        idx = sorted(set(idx))
        span = (str(idx[0]) if len(idx) == 1 else
                f'{{{idx[0]}-{idx[-1]}}}'
                if idx == list(range(idx[0], idx[-1] + 1))
                else '{' + ','.join(map(str, idx)) + '}')
        folded[pattern.replace('{}', span)] = None
    by_stem: Dict[str, List[str]] = OrderedDict()
    for k in folded:
        stem, _, leaf = k.rpartition('.')
        if leaf in ('weight', 'bias') and stem:
            by_stem.setdefault(stem, []).append(leaf)
        else:
            by_stem.setdefault(k, [])
    out = [s if not leaves else
           (f'{s}.{leaves[0]}' if len(leaves) == 1 else
            f'{s}.{{{",".join(leaves)}}}')
           for s, leaves in by_stem.items()]
    return ', '.join(out)


# --------------------------------------------------------------- options
def check_options(tubelet_init: str, temporal_attn_init: str,
                  temporal_encoder_init: str, interpolation: str,
                  image_grid: Optional[Sequence[int]]) -> None:
    """Raise ValueError for an option value that is not allowed."""
    for name, value, allowed in (
            ('tubelet_init', tubelet_init, TUBELET_INITS),
            ('temporal_attn_init', temporal_attn_init, TEMPORAL_ATTN_INITS),
            ('temporal_encoder_init', temporal_encoder_init,
             TEMPORAL_ENCODER_INITS),
            ('interpolation', interpolation, INTERPOLATIONS)):
        if value not in allowed:
            raise ValueError(f'{name} must be one of {allowed}, got '
                             f'{value!r}.')
    if image_grid is not None and not (
            isinstance(image_grid, (tuple, list)) and len(image_grid) == 2
            and all(isinstance(v, int) and v > 0 for v in image_grid)):
        raise ValueError('image_grid must be None or (rows, cols) of the '
                         f'image model\'s patch grid, got {image_grid!r}.')


# ------------------------------------------------------ reading the image
def _is_flax_msgpack(path: str) -> bool:
    name = os.path.basename(path.rstrip(os.sep))
    return (os.path.isdir(path) or path.endswith('.msgpack')
            or re.fullmatch(r'checkpoint(_\d+)?', name) is not None)


def _read(path: Union[str, os.PathLike]) -> dict:
    """Read a checkpoint without running pickled code: ``.npz`` with
    ``np.load(allow_pickle=False)``; a flax msgpack file (``checkpoint``,
    ``checkpoint_<step>``, ``*.msgpack`` or a folder of them) with
    :func:`vivit_mm.convert.load_flax_arrays`; ``.safetensors`` with
    ``safetensors``; anything else with ``torch.load(weights_only=True)``."""
    path = os.fspath(path)
    if path.endswith('.npz'):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Checkpoint {path!r} does not exist.')
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    if _is_flax_msgpack(path):
        from .convert.flax_io import load_flax_arrays
        return load_flax_arrays(path)
    if path.endswith('.safetensors'):  # e.g. timm weights from the HF hub
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Checkpoint {path!r} does not exist.')
        from safetensors.torch import load_file
        return load_file(path)
    return safe_load(path)


def _unwrap(checkpoint) -> Dict[str, torch.Tensor]:
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = _read(checkpoint)
    if not isinstance(checkpoint, dict):
        raise TypeError('checkpoint must be a path or a state dict, got '
                        f'{type(checkpoint).__name__}.')
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return {k: torch.from_numpy(np.array(v, copy=True))
            if isinstance(v, np.ndarray) else v
            for k, v in checkpoint.items()}


def detect_layout(keys: Sequence[str]) -> str:
    """``'mmpretrain'``, ``'timm'`` or ``'flax'`` from the state-dict keys.

    Raises:
        ValueError: The keys are neither (the message shows some of them).
    """
    if any('Transformer/encoderblock_' in k for k in keys):
        return 'flax'
    mmpre = any(re.match(r'(backbone\.)?layers\.\d+\.(ln1|ffn)\.', k)
                for k in keys)
    timm = any(re.match(r'blocks\.\d+\.(norm1|attn|mlp)\.', k) for k in keys)
    if mmpre and not timm:
        return 'mmpretrain'
    if timm and not mmpre:
        return 'timm'
    if any(re.match(r'(backbone\.)?layers\.\d+\.mlp\.fc1\.', k)
           for k in keys):
        raise ValueError(
            'The checkpoint looks like a ViViT checkpoint (layers.*.mlp.fc1), '
            'not an image ViT: load it with load_from or init_cfg='
            "dict(type='Pretrained', ...) instead of inflating it.")
    sample = sorted(keys)[:8]
    raise ValueError(
        'Cannot tell the checkpoint layout: expected an mmpretrain '
        'VisionTransformer (layers.N.ln1, layers.N.ffn.layers.0.0, '
        'optionally under backbone.), a timm VisionTransformer '
        '(blocks.N.norm1/attn/mlp) or a flax ViT (.npz, '
        f'Transformer/encoderblock_N/...){" (found both)" if mmpre else ""}; '
        f'first keys: {sample}.')


def to_canonical(state_dict: Dict[str, torch.Tensor]
                 ) -> Tuple[str, Dict[str, Tuple[str, torch.Tensor]],
                            List[str]]:
    """Map an image checkpoint to canonical names.

    Returns:
        tuple: ``(layout, {canonical key: (source key, tensor)},
        unmapped source keys)``.

    Raises:
        ValueError: Unknown layout, or keys that change what the image
            model computes and have no place in ViViT (layer scale, a
            pre-norm, q/k norms ...).
    """
    layout = detect_layout(list(state_dict))
    if layout == 'flax':
        return (layout, ) + _flax_to_canonical(state_dict)
    prefix = ''
    if layout == 'mmpretrain' and any(k.startswith('backbone.')
                                      for k in state_dict):
        prefix = 'backbone.'
    canon: Dict[str, Tuple[str, torch.Tensor]] = OrderedDict()
    unmapped, unsupported = [], []
    for src, value in state_dict.items():
        if not src.startswith(prefix):
            unmapped.append(src)
            continue
        key = src[len(prefix):]
        for pattern, repl in _RULES[layout]:
            if re.fullmatch(pattern, key):
                canon[re.sub(pattern, repl, key)] = (src, value)
                break
        else:
            reasons = [r for p, r in _UNSUPPORTED[layout].items()
                       if re.match(p, key)]
            if re.match(_BLOCK_PREFIX[layout], key):
                reasons.append('a parameter ViViT blocks do not have')
            if reasons:
                unsupported.append(f'{src} ({reasons[0]})')
            else:
                unmapped.append(src)
    if unsupported:
        raise ValueError(
            f'The {layout} checkpoint holds parameters ViViT cannot '
            f'represent, so the inflated model would not compute what the '
            f'image model does: {unsupported}.')
    bad = [s for s, v in canon.values() if not torch.is_tensor(v)]
    if bad:
        raise ValueError(f'Checkpoint entries {bad} are not tensors.')
    return layout, canon, unmapped


# ------------------------------------------------------------ the mapping
_FLAX_TOP = {
    'cls': 'cls_token',
    'embedding/bias': 'patch_embed.bias',
    'Transformer/posembed_input/pos_embedding': 'pos_embed',
    'pos_embedding': 'pos_embed',
    'Transformer/encoder_norm/scale': 'norm.weight',
    'Transformer/encoder_norm/bias': 'norm.bias',
}


def _flax_block(i: int, subs: dict, canon: dict) -> List[str]:
    """One ``Transformer/encoderblock_{i}``: ``{(module, index): {param:
    (source key, tensor)}}`` -> canonical entries; returns what is left."""
    by_kind: Dict[str, list] = {}
    for kind, idx in sorted(subs, key=lambda s: s[1]):
        by_kind.setdefault(kind, []).append((kind, idx))
    norms = by_kind.pop('LayerNorm', [])
    attns = by_kind.pop('MultiHeadDotProductAttention', [])
    mlps = by_kind.pop('MlpBlock', [])
    if len(norms) != 2 or len(attns) != 1 or len(mlps) != 1 or by_kind:
        return [f'encoderblock_{i}: modules {sorted(subs)}']
    pre = f'layers.{i}.'

    def take(params, name):
        return params.pop(name, (None, None))

    for ours, sub in zip(('norm1', 'norm2'), norms):
        params = subs[sub]
        for flax_name, ours_name in (('scale', 'weight'), ('bias', 'bias')):
            src, v = take(params, flax_name)
            if src is not None:
                canon[f'{pre}{ours}.{ours_name}'] = (src, v)
    params = subs[attns[0]]
    for p in ('kernel', 'bias'):
        parts = [take(params, f'{n}/{p}') for n in ('query', 'key', 'value')]
        if all(src is not None for src, _ in parts):
            srcs = [src for src, _ in parts]
            label = srcs[0].replace('/query/', '/{query,key,value}/')
            if p == 'kernel':  # 3 x (D, heads, head_dim) -> (3D, D)
                value = torch.cat([v.reshape(v.shape[0], -1).t()
                                   for _, v in parts])
            else:  # 3 x (heads, head_dim) -> (3D, )
                value = torch.cat([v.reshape(-1) for _, v in parts])
            canon[f'{pre}attn.qkv.{"weight" if p == "kernel" else p}'] = \
                (label, value)
    src, v = take(params, 'out/kernel')  # (heads, head_dim, D)
    if src is not None:
        canon[pre + 'attn.proj.weight'] = (src, v.reshape(-1, v.shape[-1]).t())
    src, v = take(params, 'out/bias')
    if src is not None:
        canon[pre + 'attn.proj.bias'] = (src, v)
    params = subs[mlps[0]]
    for dense, ours in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
        src, v = take(params, f'{dense}/kernel')  # (in, out)
        if src is not None:
            canon[f'{pre}mlp.{ours}.weight'] = (src, v.t())
        src, v = take(params, f'{dense}/bias')
        if src is not None:
            canon[f'{pre}mlp.{ours}.bias'] = (src, v)
    return [src for p in subs.values() for src, _ in p.values()]


def _flax_to_canonical(state_dict):
    """The original ViT / scenic / big_vision parameter tree (``/``-joined
    keys, as in the released ``.npz`` files), under any prefix such as
    ``opt/target/`` or ``params/``."""
    first = next(k for k in state_dict if 'Transformer/encoderblock_' in k)
    prefix = first[:first.index('Transformer/encoderblock_')]
    canon: Dict[str, Tuple[str, torch.Tensor]] = OrderedDict()
    blocks: Dict[int, dict] = {}
    unmapped, unsupported = [], []
    for src, value in state_dict.items():
        key = src[len(prefix):] if src.startswith(prefix) else None
        m = key and re.fullmatch(
            r'Transformer/encoderblock_(\d+)/([A-Za-z]+)_(\d+)/(.+)', key)
        if key == 'embedding/kernel' and value.dim() == 4:
            # (p, p, C, D) -> (D, C, p, p)
            canon['patch_embed.weight'] = (src, value.permute(3, 2, 0, 1))
        elif key in _FLAX_TOP:
            canon[_FLAX_TOP[key]] = (src, value)
        elif m:
            blocks.setdefault(int(m[1]), {}).setdefault(
                (m[2], int(m[3])), {})[m[4]] = (src, value)
        elif key is not None and key.startswith(('Transformer/',
                                                 'embedding/')):
            unsupported.append(src)
        else:
            unmapped.append(src)
    for i in sorted(blocks):
        unsupported += _flax_block(i, blocks[i], canon)
    if unsupported:
        raise ValueError(
            'The flax checkpoint holds parameters ViViT cannot represent '
            '(only pre-LN ViT blocks LayerNorm/MultiHeadDotProductAttention/'
            f'LayerNorm/MlpBlock are supported): {unsupported}.')
    return canon, unmapped


class _Plan:
    """Target values and bookkeeping, written to the backbone at the end so
    that a failed check leaves it untouched."""

    def __init__(self, backbone: nn.Module, layout: str):
        self.targets = backbone.state_dict(keep_vars=True)
        self.values: Dict[str, torch.Tensor] = OrderedDict()
        self.sources: Dict[str, str] = {}
        self.report = InflationReport(layout=layout)
        self.used: set = set()

    def put(self, key: str, value: torch.Tensor, category: str,
            source: Optional[str] = None, note: Optional[str] = None):
        if key not in self.targets:
            raise KeyError(f'internal: backbone has no {key!r}')
        self.values[key] = value
        if source is not None:
            self.sources[key] = source
            self.used.add(source)
        getattr(self.report, category).append(key)
        if note:
            self.report.notes[key] = note

    def check_shapes(self) -> None:
        bad = [f'{k} {list(self.targets[k].shape)} <- '
               f'{self.sources.get(k, "derived")} {list(v.shape)}'
               for k, v in self.values.items()
               if tuple(v.shape) != tuple(self.targets[k].shape)]
        if bad:
            raise ValueError('Shape mismatch between the image checkpoint '
                             f'and the ViViT backbone: {bad}.')

    @torch.no_grad()
    def write(self) -> None:
        for key, value in self.values.items():
            self.targets[key].copy_(value)


def _image_width_and_depth(canon, backbone: BaseViViT) -> int:
    """Check width and depth against the backbone; return image depth."""
    for key in ('pos_embed', 'patch_embed.weight'):
        if key not in canon:
            raise ValueError(f'The image checkpoint has no {key} (layout '
                             'keys: pos_embed, patch embedding weight).')
    widths = {canon[k][0]: canon[k][1].shape[0 if k.startswith('patch')
                                             else -1]
              for k in ('pos_embed', 'patch_embed.weight', 'cls_token')
              if k in canon}
    if any(w != backbone.embed_dims for w in widths.values()):
        raise ValueError(
            f'Width mismatch: the image checkpoint has embed_dims '
            f'{sorted(set(widths.values()))} ({widths}) but the ViViT '
            f'backbone has embed_dims={backbone.embed_dims}; pick the ViViT '
            'arch of the same size as the image ViT (b/l/h).')
    depth = 1 + max((int(m.group(1)) for k in canon
                     for m in [re.match(r'layers\.(\d+)\.', k)] if m),
                    default=-1)
    if depth != backbone.num_layers:
        raise ValueError(
            f'Depth mismatch: the image checkpoint has {depth} blocks '
            f'(layers.0-{depth - 1}) but the ViViT backbone has num_layers='
            f'{backbone.num_layers}.')
    missing = [f'layers.{i}.{k}' for i in range(depth) for k in BLOCK_KEYS
               if f'layers.{i}.{k}' not in canon
               and k != 'attn.qkv.bias']
    if missing:
        raise ValueError(f'The image checkpoint misses block parameters '
                         f'(canonical names): {fold_keys(missing)}.')
    return depth


def _map_blocks(plan: _Plan, canon, backbone: BaseViViT,
                temporal_attn_init: str, temporal_encoder_init: str):
    for i in range(backbone.num_layers):
        for k in BLOCK_KEYS:
            target, src = f'layers.{i}.{k}', f'layers.{i}.{k}'
            if src in canon:
                plan.put(target, canon[src][1], 'loaded', canon[src][0])
            elif target in plan.targets:  # qkv bias absent from the image
                plan.put(target, torch.zeros_like(plan.targets[target]),
                         'new', note='zeros: the image model has no qkv bias')
    if 'norm.weight' in canon:
        for p in ('weight', 'bias'):
            plan.put(f'norm.{p}', canon[f'norm.{p}'][1], 'loaded',
                     canon[f'norm.{p}'][0])
    if isinstance(backbone, ViViTM3):
        _map_temporal_attention(plan, canon, backbone, temporal_attn_init)
    if isinstance(backbone, ViViTM2) and backbone.num_temporal_layers > 0 \
            and temporal_encoder_init == 'image':
        _map_temporal_encoder(plan, canon, backbone)


def _map_temporal_attention(plan: _Plan, canon, backbone: ViViTM3,
                            init: str) -> None:
    if init == 'random':
        return
    for i in range(backbone.num_layers):
        pre = f'layers.{i}.'
        for p in ('weight', 'bias'):
            norm = plan.targets[pre + f'temporal_norm.{p}']
            plan.put(pre + f'temporal_norm.{p}',
                     torch.ones_like(norm) if p == 'weight'
                     else torch.zeros_like(norm), 'new',
                     note='identity LayerNorm (weight 1, bias 0)')
        if init == 'zeros':
            for p in ('weight', 'bias'):
                key = pre + f'temporal_attn.proj.{p}'
                plan.put(key, torch.zeros_like(plan.targets[key]), 'new',
                         note='zeros: the temporal attention adds nothing, '
                              'so the block starts as the image block (qkv '
                              'keeps its init so gradients reach it)')
        else:
            for k in ('qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias'):
                src, key = pre + 'attn.' + k, pre + 'temporal_attn.' + k
                if key in plan.targets and src in canon:
                    plan.put(key, canon[src][1], 'inflated', canon[src][0],
                             note='copy of the image attention '
                                  "(temporal_attn_init='copy')")


def _map_temporal_encoder(plan: _Plan, canon, backbone: ViViTM2) -> None:
    L_t = backbone.num_temporal_layers
    if L_t > backbone.num_layers:
        raise ValueError(
            f"temporal_encoder_init='image' takes the first "
            f'num_temporal_layers={L_t} image blocks, but the image model '
            f'has only {backbone.num_layers}.')
    note = ("copy of an image block (temporal_encoder_init='image')")
    for i in range(L_t):
        for k in BLOCK_KEYS:
            src = f'layers.{i}.{k}'
            if src in canon:
                plan.put(f'temporal_layers.{i}.{k}', canon[src][1],
                         'inflated', canon[src][0], note=note)
    if 'norm.weight' in canon:
        for p in ('weight', 'bias'):
            plan.put(f'temporal_norm.{p}', canon[f'norm.{p}'][1], 'inflated',
                     canon[f'norm.{p}'][0],
                     note='copy of the image final norm')


def _map_patch_embed(plan: _Plan, canon, backbone: BaseViViT,
                     tubelet_init: str) -> None:
    src_w, w = canon['patch_embed.weight']
    target = plan.targets['patch_embed.projection.weight']
    w = w.detach().to(target.dtype)  # divide by t in the backbone's dtype
    want = tuple(target.shape[:2]) + tuple(target.shape[-2:])
    if tuple(w.shape) != want:
        raise ValueError(
            f'Patch embedding mismatch: {src_w} is {list(w.shape)} '
            f'(embed_dims, in_channels, p, p) but patch_embed.projection.'
            f'weight needs {list(want)} (+ time); check patch_size and '
            'in_channels.')
    if backbone.tokenizer == 'tubelet' and tubelet_init == 'random':
        for p in ('weight', 'bias'):
            plan.report.new.append(f'patch_embed.projection.{p}')
            plan.report.notes[f'patch_embed.projection.{p}'] = \
                "kept as initialised (tubelet_init='random')"
            if f'patch_embed.{p}' in canon:
                plan.report.unused_notes[canon[f'patch_embed.{p}'][0]] = \
                    "not used: tubelet_init='random'"
        return
    if backbone.tokenizer == 'uniform':
        plan.put('patch_embed.projection.weight', w, 'loaded', src_w)
    else:
        t = backbone.tubelet_size
        if tubelet_init == 'central_frame':
            kernel = w.new_zeros(*w.shape[:2], t, *w.shape[2:])
            kernel[:, :, t // 2] = w
            note = (f'central frame: the image filter at temporal index '
                    f'{t // 2} of {t}, zeros elsewhere')
        else:
            kernel = w.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
            note = (f'filter inflation: the image filter / {t} at each of '
                    f'{t} temporal indices')
        plan.put('patch_embed.projection.weight', kernel, 'inflated', src_w,
                 note=note)
    if 'patch_embed.bias' in canon:
        src_b, b = canon['patch_embed.bias']
        plan.put('patch_embed.projection.bias', b, 'loaded', src_b)


def _image_grid(canon, image_grid) -> Tuple[Tuple[int, int], int]:
    """``((rows, cols), num_extra_tokens)`` of the image position table."""
    src, pe = canon['pos_embed']
    L = pe.shape[1]
    if image_grid is not None:
        extra = L - image_grid[0] * image_grid[1]
        if extra not in (0, 1):
            raise ValueError(
                f'{src} has {L} entries, which is not image_grid '
                f'{tuple(image_grid)} plus 0 or 1 CLS entries.')
        return tuple(image_grid), extra

    def side(n):
        r = int(round(n**0.5))
        return r if r * r == n else None

    if 'cls_token' in canon and side(L - 1):
        return (side(L - 1), ) * 2, 1
    if side(L):
        return (side(L), ) * 2, 0
    raise ValueError(f'Cannot infer the patch grid of {src} ({L} entries, '
                     'not a square); pass image_grid=(rows, cols).')


def _map_pos_embed(plan: _Plan, canon, backbone: BaseViViT,
                   interpolation: str, image_grid) -> None:
    src, pe = canon['pos_embed']
    grid, extra = _image_grid(canon, image_grid)
    # Resize in the backbone's precision (checkpoints may be fp16/bf16).
    pe = pe.detach().to(plan.targets['pos_embed'].dtype)
    cls_entry, table = split_extra_tokens(pe, extra)
    dst = tuple(backbone.grid[1:])
    table = resize_pos_embed_grid(table, grid, dst, interpolation)
    notes, categories = [], []
    if grid != dst:
        categories.append('resized')
        notes.append(f'spatial grid {grid[0]}x{grid[1]} -> {dst[0]}x{dst[1]} '
                     f'({interpolation}, align_corners=False)')
    if not isinstance(backbone, ViViTM2):
        n_t = backbone.num_temporal_tokens
        table = tile_pos_embed(table, n_t)
        if n_t > 1:
            categories.append('inflated')
            notes.append(f'repeated over {n_t} temporal indices (time-major)')
    if backbone.pooling == 'token':
        if extra:
            table = torch.cat([cls_entry, table], dim=1)
        else:
            table = torch.cat(
                [plan.targets['pos_embed'].detach()[:, :1].to(table), table],
                dim=1)
            notes.append('CLS entry kept as initialised (the image table '
                         'has none)')
    elif extra:
        notes.append("CLS entry dropped (pooling='gap')")
    for c in categories or ['loaded']:
        plan.put('pos_embed', table, c, src)
    # put() appended the key to each category; keep one value, all notes.
    if notes:
        plan.report.notes['pos_embed'] = '; '.join(notes)

    if backbone.pooling == 'token':
        if 'cls_token' in canon:
            plan.put('cls_token', canon['cls_token'][1], 'loaded',
                     canon['cls_token'][0])
    elif 'cls_token' in canon:
        plan.report.unused_notes[canon['cls_token'][0]] = \
            "not used: pooling='gap' has no CLS token"


def inflate_image_weights(backbone: BaseViViT,
                          checkpoint: Union[str, os.PathLike, dict],
                          *,
                          tubelet_init: str = 'central_frame',
                          temporal_attn_init: str = 'zeros',
                          temporal_encoder_init: str = 'random',
                          interpolation: str = 'bicubic',
                          image_grid: Optional[Sequence[int]] = None,
                          logger: Optional[str] = 'current'
                          ) -> InflationReport:
    """Load an image ViT into a ViViT backbone, in place (paper sec. 3.4).

    Keys the image model does not provide (Model 2's temporal encoder, a
    Model 3 temporal ``qkv``, ``tubelet_init='random'`` ...) keep their
    current values, so call ``backbone.init_weights()`` first (the
    :class:`~vivit_mm.engine.ViViTInitHook` runs after the Runner's
    initialisation). Nothing is written unless every check passes.

    Args:
        backbone (BaseViViT): Any of ``ViViTM1``-``ViViTM4``.
        checkpoint (str | PathLike | dict): Path (read with
            ``torch.load(weights_only=True)``) or a state dict. mmpretrain
            layout (keys with or without ``backbone.``, optionally under
            ``state_dict``), timm layout (optionally under ``model``) or
            the flax parameter tree of the original ViT/big_vision ``.npz``
            files (read with ``np.load(allow_pickle=False)``) or of scenic
            msgpack checkpoints (``checkpoint_<step>`` files or folders).
            ``.safetensors`` files (timm on the HuggingFace hub) are read
            with ``safetensors``.
        tubelet_init (str): Tubelet (Conv3d) filter from the 2D filter:
            ``'central_frame'`` (default; the image filter at temporal index
            ``t // 2``, zeros elsewhere), ``'average'`` (filter inflation:
            the image filter / t at every index) or ``'random'`` (the
            patch embedding is not taken). Ignored for uniform frame
            sampling, whose 2D filter is copied.
        temporal_attn_init (str): Model 3's temporal attention: ``'zeros'``
            (default; output projection zero, ``temporal_norm`` identity:
            each block starts as the image block), ``'copy'`` (a copy of the
            image attention, scenic's default) or ``'random'`` (as is).
        temporal_encoder_init (str): Model 2's temporal encoder:
            ``'random'`` (default; as initialised) or ``'image'`` (its
            blocks and final norm from the first ``num_temporal_layers``
            image blocks and the image's final norm; its CLS token and
            position embedding stay as initialised).
        interpolation (str): Resize of the spatial position table when the
            patch grids differ: ``'bicubic'`` (default, as mmpretrain and
            timm) or ``'bilinear'`` (as scenic).
        image_grid (tuple[int, int], optional): The image model's patch grid
            when it is not square. Defaults to None (inferred).
        logger (str, optional): Where :func:`mmengine.logging.print_log`
            writes the report table; None to stay silent.

    Returns:
        InflationReport: Where each key came from; unused checkpoint keys.

    Raises:
        ValueError: Unknown layout or option; width, depth, patch-size or
            shape mismatch (naming the keys); parameters ViViT cannot
            represent.
        TypeError: ``backbone`` is not a ViViT backbone.
        FileNotFoundError: ``checkpoint`` is a path that does not exist.
    """
    if not isinstance(backbone, BaseViViT):
        raise TypeError('backbone must be a ViViT backbone (ViViTM1-M4), got '
                        f'{type(backbone).__name__}.')
    check_options(tubelet_init, temporal_attn_init, temporal_encoder_init,
                  interpolation, image_grid)
    layout, canon, unmapped = to_canonical(_unwrap(checkpoint))
    _image_width_and_depth(canon, backbone)

    plan = _Plan(backbone, layout)
    _map_patch_embed(plan, canon, backbone, tubelet_init)
    _map_pos_embed(plan, canon, backbone, interpolation, image_grid)
    _map_blocks(plan, canon, backbone, temporal_attn_init,
                temporal_encoder_init)
    plan.check_shapes()
    plan.write()

    report = plan.report
    touched = set(plan.values) | set(report.new)
    for key in plan.targets:
        if key not in touched:
            report.new.append(key)
            report.notes[key] = 'kept as initialised (not in an image ViT)'
    report.unused = [s for s, _ in canon.values() if s not in plan.used]
    report.unused += unmapped
    for key in report.unused:
        for pattern, note in _UNUSED_NOTES.items():
            if re.match(pattern, key) and key not in report.unused_notes:
                report.unused_notes[key] = note
    if logger is not None:
        print_log('\n' + report.table(), logger=logger)
    return report
