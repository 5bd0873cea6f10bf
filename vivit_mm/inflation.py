"""Start a ViViT backbone from an image ViT: the paper's section 3.4.

:func:`inflate_image_weights` reads an image ViT checkpoint (any layout
:mod:`vivit_mm.convert.image_vit` knows: mmpretrain, timm, flax) and writes
it into any of the four ViViT variants, in place:

- blocks, final norm: copied into the encoder that mirrors the image ViT
  (Model 3: its spatial attention; Model 2: the spatial encoder);
- position embedding: the spatial table, resized when the grid differs, then
  repeated over the temporal indices of that encoder's table (time-major:
  Models 1, 3, 4 tile it ``n_t`` times, Model 2's spatial encoder takes it
  once); the CLS entry is kept for ``pooling='token'`` and dropped for
  ``'gap'``;
- patch embedding: copied for uniform frame sampling; for tubelets inflated
  by ``tubelet_init`` (central frame or filter inflation);
- attention a variant adds to the image block (Model 3's temporal
  attention): its output projection zeroed (each block then starts as the
  image block), a copy of the image attention, or left as is;
- encoders a variant adds (Model 2's temporal encoder): left as
  initialised, or taken from the first ``L_t`` image blocks;
- the classifier head is never taken.

What a variant adds is asked from the backbone
(:meth:`~vivit_mm.models.backbones.base.BaseViViT.extra_attention_keys`,
``backbone.encoders``). Every key is accounted for in the returned
:class:`~vivit_mm.convert.report.InflationReport`.
"""
import os
import re
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import nn

from .convert.image_vit import UNUSED_NOTES, to_canonical
from .convert.io import unwrap_state_dict
from .convert.report import InflationReport, fold_keys
from .models.backbones.base import BaseViViT
from .models.utils.pos_embed import (INTERPOLATIONS, resize_pos_embed_grid,
                                     solve_token_grid, split_extra_tokens,
                                     tile_pos_embed)
from .utils import checks

TUBELET_INITS = ('central_frame', 'average', 'random')
TEMPORAL_ATTN_INITS = ('zeros', 'copy', 'random')
TEMPORAL_ENCODER_INITS = ('random', 'image')

#: Parameters of one image block, in our names.
BLOCK_KEYS = tuple(f'{m}.{p}' for m in ('norm1', 'attn.qkv', 'attn.proj',
                                         'norm2', 'mlp.fc1', 'mlp.fc2')
                   for p in ('weight', 'bias'))
PATCH = 'patch_embed.projection'


def check_options(tubelet_init: str, temporal_attn_init: str,
                  temporal_encoder_init: str, interpolation: str,
                  image_grid: Optional[Sequence[int]]) -> None:
    """Raise ValueError for an option value that is not allowed."""
    checks.one_of(tubelet_init, 'tubelet_init', TUBELET_INITS)
    checks.one_of(temporal_attn_init, 'temporal_attn_init',
                  TEMPORAL_ATTN_INITS)
    checks.one_of(temporal_encoder_init, 'temporal_encoder_init',
                  TEMPORAL_ENCODER_INITS)
    checks.one_of(interpolation, 'interpolation', INTERPOLATIONS)
    if image_grid is not None and not (
            isinstance(image_grid, (tuple, list)) and len(image_grid) == 2
            and all(isinstance(v, int) and v > 0 for v in image_grid)):
        raise ValueError('image_grid must be None or (rows, cols) of the '
                         f'image model\'s patch grid, got {image_grid!r}.')


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
    for key in ('pos_embed', PATCH + '.weight'):
        if key not in canon:
            raise ValueError(f'The image checkpoint has no {key} (layout '
                             'keys: pos_embed, patch embedding weight).')
    widths = {canon[k][0]: canon[k][1].shape[0 if k.startswith('patch')
                                             else -1]
              for k in ('pos_embed', PATCH + '.weight', 'cls_token')
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


def _map_blocks(plan: _Plan, canon, backbone: BaseViViT) -> None:
    """Image blocks and final norm -> the encoder that mirrors the image
    ViT (``backbone.encoders[0]``, whose names are the image ViT's)."""
    for i in range(backbone.num_layers):
        for k in BLOCK_KEYS:
            key = f'layers.{i}.{k}'
            if key in canon:
                plan.put(key, canon[key][1], 'loaded', canon[key][0])
            elif key in plan.targets:  # qkv bias absent from the image
                plan.put(key, torch.zeros_like(plan.targets[key]), 'new',
                         note='zeros: the image model has no qkv bias')
    if 'norm.weight' in canon:
        for p in ('weight', 'bias'):
            plan.put(f'norm.{p}', canon[f'norm.{p}'][1], 'loaded',
                     canon[f'norm.{p}'][0])


def _map_extra_attention(plan: _Plan, canon, backbone: BaseViViT,
                         init: str) -> None:
    """Attention sub-layers a variant adds to the image block (Model 3's
    temporal attention), from the backbone's
    :meth:`~BaseViViT.extra_attention_keys`."""
    if init == 'random':
        return
    for extra, image in backbone.extra_attention_keys():
        if image.endswith('norm1'):
            for p in ('weight', 'bias'):
                norm = plan.targets[f'{extra}.{p}']
                plan.put(f'{extra}.{p}', torch.ones_like(norm)
                         if p == 'weight' else torch.zeros_like(norm), 'new',
                         note='identity LayerNorm (weight 1, bias 0)')
        elif init == 'zeros':
            for p in ('weight', 'bias'):
                key = f'{extra}.proj.{p}'
                plan.put(key, torch.zeros_like(plan.targets[key]), 'new',
                         note='zeros: the added attention contributes '
                              'nothing, so the block starts as the image '
                              'block (qkv keeps its init so gradients reach '
                              'it)')
        else:
            for k in ('qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias'):
                src, key = f'{image}.{k}', f'{extra}.{k}'
                if key in plan.targets and src in canon:
                    plan.put(key, canon[src][1], 'inflated', canon[src][0],
                             note='copy of the image attention '
                                  "(temporal_attn_init='copy')")


def _map_extra_encoders(plan: _Plan, canon, backbone: BaseViViT) -> None:
    """Encoders a variant adds (Model 2's temporal encoder) from the first
    image blocks and the image final norm (``temporal_encoder_init=
    'image'``); their CLS tokens and position tables stay as initialised."""
    for encoder in backbone.encoders[1:]:
        depth = encoder.depth
        if depth > backbone.num_layers:
            raise ValueError(
                f"temporal_encoder_init='image' takes the first "
                f'num_temporal_layers={depth} image blocks, but the image '
                f'model has only {backbone.num_layers}.')
        note = "copy of an image block (temporal_encoder_init='image')"
        for i in range(depth):
            for k in BLOCK_KEYS:
                src = f'layers.{i}.{k}'
                if src in canon:
                    plan.put(f'{encoder.key("layers")}.{i}.{k}',
                             canon[src][1], 'inflated', canon[src][0],
                             note=note)
        if 'norm.weight' in canon:
            for p in ('weight', 'bias'):
                plan.put(f'{encoder.key("norm")}.{p}', canon[f'norm.{p}'][1],
                         'inflated', canon[f'norm.{p}'][0],
                         note='copy of the image final norm')


def _map_patch_embed(plan: _Plan, canon, backbone: BaseViViT,
                     tubelet_init: str) -> None:
    src_w, w = canon[PATCH + '.weight']
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
            if f'{PATCH}.{p}' in canon:
                plan.report.unused_notes[canon[f'{PATCH}.{p}'][0]] = \
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
    if PATCH + '.bias' in canon:
        src_b, b = canon[PATCH + '.bias']
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
    for extra in ((1, 0) if 'cls_token' in canon else (0, )):
        grid = solve_token_grid(L - extra, n_t=1)  # one frame, square
        if grid is not None:
            return grid[1:], extra
    raise ValueError(f'Cannot infer the patch grid of {src} ({L} entries, '
                     'not a square); pass image_grid=(rows, cols).')


def _map_pos_embed(plan: _Plan, canon, backbone: BaseViViT,
                   interpolation: str, image_grid) -> None:
    src, pe = canon['pos_embed']
    grid, extra = _image_grid(canon, image_grid)
    # Resize in the backbone's precision (checkpoints may be fp16/bf16).
    pe = pe.detach().to(plan.targets['pos_embed'].dtype)
    cls_entry, table = split_extra_tokens(pe, extra)
    # The table of the encoder that mirrors the image ViT: Model 2's spatial
    # encoder has one frame's grid (1, n_h, n_w), the others n_t frames.
    n_t, *dst = backbone.encoders[0].grid
    dst = tuple(dst)
    table = resize_pos_embed_grid(table, grid, dst, interpolation)
    notes, categories = [], []
    if grid != dst:
        categories.append('resized')
        notes.append(f'spatial grid {grid[0]}x{grid[1]} -> {dst[0]}x{dst[1]} '
                     f'({interpolation}, align_corners=False)')
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
    layout, canon, unmapped = to_canonical(unwrap_state_dict(checkpoint))
    _image_width_and_depth(canon, backbone)

    plan = _Plan(backbone, layout)
    _map_patch_embed(plan, canon, backbone, tubelet_init)
    _map_pos_embed(plan, canon, backbone, interpolation, image_grid)
    _map_blocks(plan, canon, backbone)
    _map_extra_attention(plan, canon, backbone, temporal_attn_init)
    if temporal_encoder_init == 'image':
        _map_extra_encoders(plan, canon, backbone)
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
        for pattern, note in UNUSED_NOTES.items():
            if re.match(pattern, key) and key not in report.unused_notes:
                report.unused_notes[key] = note
    if logger is not None:
        print_log('\n' + report.table(), logger=logger)
    return report
