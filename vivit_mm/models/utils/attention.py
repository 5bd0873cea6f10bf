"""Multi-head self-attention for ViViT, joint or factorised over space/time.

One module covers the paper's three attention patterns (section 3.3):
every share of heads attends along one *axis* of the time-major token grid
``(n_t, n_s)``:

* ``'all'``: all tokens (Models 1 and 2);
* ``'space'``: tokens of the same temporal index (Model 3's first attention);
* ``'time'``: tokens of the same spatial index (Model 3's second attention).

``head_axes=('time', 'space')`` gives Model 4's factorised dot-product
attention: the first half of the heads attends over time, the second half
over space (the official order). Factorised attention reshapes tokens into
groups; it never masks an ``N x N`` matrix.

Every attention goes through :func:`attend`: fused
``scaled_dot_product_attention`` by default, or the explicit
``softmax(q k^T / sqrt(d)) v`` formula for tests and debugging. While a
module's ``recorded`` attribute is a list (see
:func:`vivit_mm.visualization.record_attention`), it takes the explicit path
and appends every attention-probability tensor it computes to that list.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

#: The token axes a head can attend along.
AXES = ('all', 'space', 'time')


def attend(q: torch.Tensor,
           k: torch.Tensor,
           v: torch.Tensor,
           dropout_p: float = 0.0,
           fused: bool = True) -> torch.Tensor:
    """Scaled dot-product attention over the second-to-last axis.

    Args:
        q, k, v (torch.Tensor): ``[..., n, head_dim]``.
        dropout_p (float): Dropout on the attention probabilities.
        fused (bool): Use ``F.scaled_dot_product_attention`` if True, the
            explicit formula otherwise.

    Returns:
        torch.Tensor: ``[..., n, head_dim]``.
    """
    if fused:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    weights = attention_probs(q, k)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def attention_probs(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(head_dim))``: ``[..., n, n]``, rows sum to 1."""
    scale = q.shape[-1]**-0.5
    return torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)


# Token grouping along an axis of the time-major grid, index t * n_s + s.
# ``x`` is ``[B, N, ...]``; the groups go into the batch axis.
_GROUP = {'space': 'b (t s) ... -> (b t) s ...',
          'time': 'b (t s) ... -> (b s) t ...'}
_UNGROUP = {'space': '(b t) s ... -> b (t s) ...',
            'time': '(b s) t ... -> b (t s) ...'}


def group_tokens(x: torch.Tensor, axis: str,
                 grid: Tuple[int, int]) -> torch.Tensor:
    """``[B, n_t * n_s, ...]`` -> one group per attention neighbourhood:
    ``[B * n_t, n_s, ...]`` for ``'space'``, ``[B * n_s, n_t, ...]`` for
    ``'time'``; ``x`` itself for ``'all'``."""
    if axis == 'all':
        return x
    return rearrange(x, _GROUP[axis], t=grid[0], s=grid[1])


def ungroup_tokens(x: torch.Tensor, axis: str,
                   grid: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`group_tokens`."""
    if axis == 'all':
        return x
    return rearrange(x, _UNGROUP[axis], t=grid[0], s=grid[1])


class MultiheadSelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection, each share
    of heads attending along one axis of the token grid.

    Args:
        embed_dims (int): Token width D.
        num_heads (int): Number of heads; must divide ``embed_dims`` and be a
            multiple of ``len(head_axes)``.
        qkv_bias (bool): Bias in the q/k/v projection. Defaults to True.
        attn_drop (float): Dropout on attention probabilities (training only).
        proj_drop (float): Dropout after the output projection.
        fused (bool): Use the fused SDPA kernel. Defaults to True.
        head_axes (Sequence[str]): The axis (``'all'``, ``'space'`` or
            ``'time'``) of each equal share of heads, in head order.
            Defaults to ``('all', )``: joint attention.
        grid (tuple[int, int], optional): ``(n_t, n_s)`` of the time-major
            tokens; needed unless every share attends over ``'all'``.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0,
                 fused: bool = True,
                 head_axes: Sequence[str] = ('all', ),
                 grid: Optional[Tuple[int, int]] = None) -> None:
        super().__init__()
        head_axes = tuple(head_axes)
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads}).')
        unknown = [a for a in head_axes if a not in AXES]
        if not head_axes or unknown:
            raise ValueError(f'head_axes must be a non-empty sequence of '
                             f'{AXES}, got {head_axes!r}.')
        if num_heads % len(head_axes) != 0:
            raise ValueError(
                f'The heads are split into {len(head_axes)} equal shares '
                f'({"/".join(head_axes)}), so num_heads must be a multiple '
                f'of {len(head_axes)}; got {num_heads}.' +
                (' (Factorised dot-product attention, Model 4: num_heads '
                 'must be even.)' if len(head_axes) == 2 else ''))
        if grid is None and set(head_axes) != {'all'}:
            raise ValueError('Attention over space or time needs the token '
                             'grid (n_t, n_s).')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.head_axes = head_axes
        self.grid = None if grid is None else tuple(grid)
        self.attn_drop = attn_drop
        self.fused = fused
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        #: None, or a list that every forward appends its attention
        #: probabilities to, one ``(axis, [G, heads, n, n])`` pair per share
        #: of heads (a plain attribute: not in the state dict).
        self.recorded: Optional[List[Tuple[str, torch.Tensor]]] = None

    def _attend(self, q, k, v, axis: str):
        p = self.attn_drop if self.training else 0.0
        if self.recorded is None:
            return attend(q, k, v, dropout_p=p, fused=self.fused)
        weights = attention_probs(q, k)  # the explicit path, recorded
        self.recorded.append((axis, weights.detach()))
        if p > 0:
            weights = F.dropout(weights, p=p)
        return weights @ v

    def _joint(self, x: torch.Tensor, axis: str) -> torch.Tensor:
        """Every head over every token of ``x``: ``[G, n, D] -> [G, n, D]``
        (before the output projection)."""
        G, n, _ = x.shape
        # [G, n, 3 * D] -> 3 x [G, heads, n, head_dim]
        qkv = self.qkv(x).reshape(G, n, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        y = self._attend(q, k, v, axis)  # [G, heads, n, head_dim]
        return y.transpose(1, 2).reshape(G, n, self.embed_dims)

    def _split(self, x: torch.Tensor,
               grid: Tuple[int, int]) -> torch.Tensor:
        """Each share of heads along its own axis: ``[B, N, D] -> [B, N,
        D]`` (Model 4), before the output projection."""
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dims)
        share = self.num_heads // len(self.head_axes)
        outs = []
        for i, axis in enumerate(self.head_axes):
            part = qkv[:, :, :, i * share:(i + 1) * share]
            # [B, N, 3, h, hd] -> [G, n, 3, h, hd] -> 3 x [G, h, n, hd]
            q, k, v = group_tokens(part, axis, grid).permute(
                2, 0, 3, 1, 4).unbind(0)
            y = self._attend(q, k, v, axis)
            y = y.transpose(1, 2)  # [G, n, h, hd]
            outs.append(ungroup_tokens(y, axis, grid))  # [B, N, h, hd]
        return torch.cat(outs, dim=2).reshape(B, N, self.embed_dims)

    def forward(self, x: torch.Tensor,
                grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``; ``grid`` is the ``(n_t, n_s)`` of
        ``x`` when it is not the one the module was built for (a backbone
        with ``interpolate_pos_embed=True`` given another input size)."""
        grid = self.grid if grid is None else tuple(grid)
        if len(self.head_axes) == 1:
            # One axis for all heads: group the tokens themselves (the
            # projections act per token, so grouping first is exact).
            axis = self.head_axes[0]
            y = self.proj(self._joint(group_tokens(x, axis, grid), axis))
            return self.proj_drop(ungroup_tokens(y, axis, grid))
        return self.proj_drop(self.proj(self._split(x, grid)))
