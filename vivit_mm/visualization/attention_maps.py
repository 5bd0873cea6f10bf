"""Where a ViViT backbone looks: CLS attention and attention rollout.

The attention probabilities come from the backbone's own
:class:`~vivit_mm.models.utils.attention.MultiheadSelfAttention` modules:
:func:`record_attention` switches them to their explicit path, which
records every ``softmax(q k^T / sqrt(d))`` it computes. Nothing is
re-implemented here but the bookkeeping:

* :func:`full_attention` writes each recorded attention as one ``N x N``
  matrix per head over the time-major token grid (plus the CLS token, if
  any): a factorised spatial attention becomes block-diagonal over time, a
  temporal one connects only tokens of the same spatial index, and Model 4's
  split heads are put side by side in head order.
* :func:`rollout` is attention rollout (Abnar and Zuidema, 2020): every
  attention sub-layer is a residual branch, so it contributes
  ``0.5 * A + 0.5 * I`` (``A`` averaged over its heads), and the sub-layers
  are multiplied in the order they run. Model 3's spatial and temporal
  attentions are two such factors per block; Model 4's factorised
  dot-product attention is one factor whose head average mixes the temporal
  and spatial heads.
* :func:`attention_maps` reads out one relevance per input token for each
  variant and pooling (the readout is in :attr:`AttentionMaps.method`).

A rollout is defined for all four variants, so no gradient-based map is
needed.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from ..models.backbones.base import BaseViViT

#: How each map is read out, by the backbone's structure (see
#: :func:`structure`; ``{depth}`` and ``{read}`` filled in).
METHODS = {
    'joint': 'rollout over the {depth} blocks of joint attention, read at '
             '{read}',
    'factorised_encoder':
        'rollout of the spatial encoder ({depth} blocks) per temporal index, '
        'read at {read}, times the rollout of the temporal encoder over the '
        'temporal indices',
    'factorised_self_attention':
        'rollout composing the spatial and the temporal attention of each of '
        'the {depth} blocks in the order they run, read at {read}',
    'factorised_dot_product':
        'rollout over the {depth} blocks of factorised dot-product attention '
        '(each block: the average of its temporal and its spatial heads), '
        'read at {read}',
}


def structure(backbone: BaseViViT) -> str:
    """Which of :data:`METHODS` fits ``backbone``, asked from its public
    structure: an image encoder that sees one temporal index at a time
    (Model 2's factorised encoder), else its blocks' attention layout."""
    first = backbone.encoders[0]
    if len(backbone.encoders) > 1 or first.grid != backbone.grid:
        return 'factorised_encoder'
    layout = backbone.attention_layout()
    if len(layout) > 1:
        return 'factorised_self_attention'
    return 'factorised_dot_product' if len(layout[0][1]) > 1 else 'joint'


class Recording:
    """What :func:`record_attention` yields: the attention modules of each
    encoder, and after a forward pass their recorded probabilities."""

    def __init__(self, backbone: BaseViViT) -> None:
        self.backbone = backbone
        #: encoder prefix -> [layer][sub-layer] attention modules.
        self.modules: Dict[str, List[List[torch.nn.Module]]] = {}
        for encoder in backbone.encoders:
            layers = getattr(backbone, encoder.key('layers'))
            self.modules[encoder.prefix] = [
                [getattr(block, name) for name in block.attention_order]
                for block in layers]
        #: id(module) -> the list it records into (kept after the block).
        self.lists: Dict[int, list] = {}

    def layers(self, prefix: str = '') -> List[List[torch.Tensor]]:
        """``[layer][sub-layer]`` full attention ``[B, heads, N, N]`` of the
        encoder ``prefix``, in the order the sub-layers ran."""
        out = []
        for i, block in enumerate(self.modules[prefix]):
            row = []
            for m in block:
                recorded = self.lists.get(id(m))
                if not recorded:
                    raise RuntimeError(
                        f'No attention recorded in {prefix}layers.{i}: run '
                        'the backbone inside record_attention() first.')
                if len(recorded) != len(m.head_axes):
                    raise RuntimeError(
                        f'{prefix}layers.{i} recorded {len(recorded)} '
                        f'attentions for {len(m.head_axes)} share(s) of '
                        'heads: run exactly one forward pass per '
                        'record_attention() block.')
                row.append(full_attention(recorded, m.grid))
            out.append(row)
        return out


def _mean_over_heads(module, args, output) -> None:
    """Forward hook: keep each share's head average only (equal shares, so
    the average of the shares is the average over all heads)."""
    module.recorded[:] = [(axis, w.mean(dim=1, keepdim=True))
                          for axis, w in module.recorded]


@contextmanager
def record_attention(backbone: BaseViViT,
                     keep_heads: bool = False) -> Iterator[Recording]:
    """Record the attention probabilities of one forward pass of
    ``backbone``.

    Inside the block every attention module takes its explicit path (the
    same function as ``fused_attn=False``) and keeps its probabilities; on
    exit the modules are as before. Parameters and state-dict keys are
    never touched.

    Args:
        backbone: A ViViT backbone.
        keep_heads: Keep every head's probabilities; by default each module
            keeps only their average over heads (all a rollout needs, and
            ``heads`` times less memory: a ViViT-B Model 1 on 32 frames has
            ``N = 3137`` tokens, so one block's 12 heads take 0.5 GB).

    Example::

        with record_attention(backbone) as rec, torch.no_grad():
            backbone(x)
        maps = attention_maps(rec)
    """
    if not isinstance(backbone, BaseViViT):
        raise TypeError(f'record_attention needs a ViViT backbone (ViViTM1-'
                        f'ViViTM4), got {type(backbone).__name__}.')
    rec = Recording(backbone)
    mods = [m for blocks in rec.modules.values() for b in blocks for m in b]
    handles = []
    for m in mods:
        m.recorded = rec.lists[id(m)] = []
        if not keep_heads:
            handles.append(m.register_forward_hook(_mean_over_heads))
    try:
        yield rec
    finally:
        for h in handles:
            h.remove()
        for m in mods:
            m.recorded = None


def full_attention(recorded: List[Tuple[str, torch.Tensor]],
                   grid: Optional[Tuple[int, int]]) -> torch.Tensor:
    """One module's recorded attentions as ``[B, heads, N, N]`` over all its
    tokens (time-major index ``t * n_s + s``).

    Args:
        recorded: ``(axis, probabilities)`` per share of heads, in head
            order, as the module records them: ``[B, h, N, N]`` for
            ``'all'``, ``[B * n_t, h, n_s, n_s]`` for ``'space'``,
            ``[B * n_s, h, n_t, n_t]`` for ``'time'``.
        grid: The module's ``(n_t, n_s)``; unused for ``'all'``.
    """
    shares = []
    for axis, w in recorded:
        if axis == 'all':
            shares.append(w)
            continue
        n_t, n_s = grid
        h = w.shape[1]
        if axis == 'space':  # one block per temporal index
            w = w.reshape(-1, n_t, h, n_s, n_s)
            full = torch.einsum('bthij,tu->bhtiuj', w,
                                torch.eye(n_t, dtype=w.dtype))
        else:  # 'time': one block per spatial index
            w = w.reshape(-1, n_s, h, n_t, n_t)
            full = torch.einsum('bshij,sv->bhisjv', w,
                                torch.eye(n_s, dtype=w.dtype))
        shares.append(full.reshape(w.shape[0], h, n_t * n_s, n_t * n_s))
    return torch.cat(shares, dim=1)


def rollout(layers: List[List[torch.Tensor]]) -> torch.Tensor:
    """Attention rollout over ``[layer][sub-layer]`` full attentions
    ``[B, heads, N, N]``: the product, last sub-layer first, of
    ``0.5 * mean_heads(A) + 0.5 * I``. Returns ``[B, N, N]``; row ``i``
    says how much of output token ``i`` flows from each input token (rows
    sum to 1)."""
    result = None
    for block in layers:
        for a in block:
            a = a.mean(dim=1)
            eye = torch.eye(a.shape[-1], dtype=a.dtype)
            a = 0.5 * a + 0.5 * eye
            result = a if result is None else a @ result
    return result


def _read(r: torch.Tensor, cls: bool) -> torch.Tensor:
    """``[B, N (+1), N (+1)]`` -> the relevance of each input token for
    the pooled feature, ``[B, N]``: the CLS row (without the CLS column),
    or the mean row for average pooling."""
    return r[:, 0, 1:] if cls else r.mean(dim=1)


@dataclass
class AttentionMaps:
    """Per-token relevance maps of one forward pass.

    Attributes:
        rollout (torch.Tensor): ``[B, n_t, n_h, n_w]``, non-negative.
        cls_attention (torch.Tensor, optional): ``[B, n_t, n_h, n_w]``: the
            last block's CLS attention (averaged over heads), for
            ``pooling='token'``; for Model 2 the spatial encoder's per
            temporal index times the temporal encoder's. None for
            ``pooling='gap'`` (there is no CLS token).
        method (dict): How each map was read out, by map name.
    """
    rollout: torch.Tensor
    cls_attention: Optional[torch.Tensor]
    method: Dict[str, str]


def attention_maps(rec: Recording) -> AttentionMaps:
    """The rollout (and CLS attention) of the pass ``rec`` recorded."""
    bb = rec.backbone
    cls = bb.pooling == 'token'
    grid = bb.grid
    read = 'the CLS token' if cls else 'the mean of all tokens (gap)'
    spatial = rec.layers(bb.encoders[0].prefix)
    kind = structure(bb)
    if kind == 'factorised_encoder':
        B = spatial[0][0].shape[0] // grid[0]
        frame = _read(rollout(spatial), cls).reshape(B, grid[0], -1)
        last = _read(spatial[-1][-1].mean(1), cls).reshape(B, grid[0], -1)
        if len(bb.encoders) > 1:
            temporal = rec.layers(bb.encoders[1].prefix)
            over_time = _read(rollout(temporal), cls)  # [B, n_t]
            last_t = _read(temporal[-1][-1].mean(1), cls)
        else:  # average-pool baseline: every temporal index weighs 1 / n_t
            over_time = last_t = torch.full((B, grid[0]), 1 / grid[0])
        maps = over_time[..., None] * frame
        cls_maps = last_t[..., None] * last
        depth = bb.encoders[0].depth
    else:
        maps = _read(rollout(spatial), cls)
        cls_maps = _read(spatial[-1][-1].mean(1), cls)
        depth = len(spatial)
    shape = (maps.shape[0], *grid)
    method = dict(rollout=METHODS[kind].format(depth=depth, read=read))
    if cls:
        method['cls_attention'] = (
            'CLS attention of the last block, averaged over heads' +
            (' (last spatial block per temporal index, times the last '
             'temporal block)' if kind == 'factorised_encoder' else ''))
    return AttentionMaps(
        rollout=maps.reshape(shape),
        cls_attention=cls_maps.reshape(shape) if cls else None,
        method=method)


def object_mass_ratio(heat: torch.Tensor, mask: torch.Tensor) -> float:
    """How much more of the map's mass lies on ``mask`` than its area share:
    ``(sum(heat * mask) / sum(heat)) / mean(mask)``; 1 means no preference.

    Args:
        heat: A non-negative map, e.g. ``[T, H, W]`` upsampled to the
            frames.
        mask: A boolean (or 0/1) map of the same shape.
    """
    heat, mask = torch.as_tensor(heat).double(), torch.as_tensor(mask)
    if heat.shape != mask.shape:
        raise ValueError(f'heat {list(heat.shape)} and mask '
                         f'{list(mask.shape)} must have the same shape.')
    mask = mask.double()
    if not 0 < mask.mean() < 1:
        raise ValueError('The mask must cover part of the map, not none or '
                         'all of it.')
    if (heat < 0).any() or heat.sum() <= 0:
        raise ValueError('The map must be non-negative with positive mass.')
    return float((heat * mask).sum() / heat.sum() / mask.mean())


def recognizer_maps(model: torch.nn.Module,
                    x: torch.Tensor) -> Tuple[AttentionMaps, torch.Tensor]:
    """The maps of a recognizer's ViViT backbone on normalised inputs
    ``[B, C, T, H, W]``, and the head's class probabilities ``[B, K]``."""
    with torch.no_grad(), record_attention(model.backbone) as rec:
        scores = model.cls_head(model.backbone(x)).softmax(-1)
    return attention_maps(rec), scores.float()
