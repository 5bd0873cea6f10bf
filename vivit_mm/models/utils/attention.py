"""Multi-head self-attention for ViViT: joint, and factorised dot-product.

Every attention here goes through :func:`attend`, which uses
``torch.nn.functional.scaled_dot_product_attention`` (fused) by default and
keeps an explicit ``softmax(q k^T / sqrt(d)) v`` path for tests and debugging.
Factorised attention is done by reshaping tokens into groups (one group per
temporal index for space, one per spatial index for time), never by masking an
``N x N`` matrix.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


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
    scale = q.shape[-1]**-0.5
    weights = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


class MultiheadSelfAttention(nn.Module):
    """Standard multi-head self-attention with a fused ``qkv`` projection.

    Args:
        embed_dims (int): Token width D.
        num_heads (int): Number of heads; must divide ``embed_dims``.
        qkv_bias (bool): Bias in the q/k/v projection. Defaults to True.
        attn_drop (float): Dropout on attention probabilities (training only).
        proj_drop (float): Dropout after the output projection.
        fused (bool): Use the fused SDPA kernel. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0,
                 fused: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads}).')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.attn_drop = attn_drop
        self.fused = fused
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def _split_heads(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        B, N, _ = x.shape
        # [B, N, 3 * D] -> 3 x [B, heads, N, head_dim]
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dims)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def _merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, _, N, _ = x.shape
        # [B, heads, N, head_dim] -> [B, N, D]
        x = x.transpose(1, 2).reshape(B, N, self.embed_dims)
        return self.proj_drop(self.proj(x))

    def _attend(self, q, k, v):
        p = self.attn_drop if self.training else 0.0
        return attend(q, k, v, dropout_p=p, fused=self.fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``."""
        q, k, v = self._split_heads(x)
        return self._merge_heads(self._attend(q, k, v))


class FactorisedDotProductAttention(MultiheadSelfAttention):
    """Model 4's attention (paper section 3.3, Fig. 5).

    Same parameters as :class:`MultiheadSelfAttention`. The first half of the
    heads attends only over the temporal axis (tokens with the same spatial
    index), the second half only over the spatial axis (tokens with the same
    temporal index), as in the official implementation; the head outputs are
    concatenated and projected by the usual output projection.

    Args:
        grid (tuple[int, int]): ``(n_t, n_s)``, temporal and spatial token
            counts; tokens are time-major (``index = t * n_s + s``).
        **kwargs: As :class:`MultiheadSelfAttention`.
    """

    def __init__(self, embed_dims: int, num_heads: int, grid: Tuple[int, int],
                 **kwargs) -> None:
        if num_heads % 2 != 0:
            raise ValueError(
                f'Factorised dot-product attention (Model 4) splits the heads '
                f'half temporal, half spatial, so num_heads must be even; '
                f'got {num_heads}.')
        super().__init__(embed_dims, num_heads, **kwargs)
        self.grid = tuple(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n_t * n_s, D] -> [B, n_t * n_s, D]``."""
        B = x.shape[0]
        n_t, n_s = self.grid
        h = self.num_heads // 2
        q, k, v = self._split_heads(x)  # [B, heads, N, hd]

        def temporal(t):  # [B, h, N, hd] -> [B * n_s, h, n_t, hd]
            t = t[:, :h].reshape(B, h, n_t, n_s, self.head_dims)
            return t.permute(0, 3, 1, 2, 4).reshape(B * n_s, h, n_t, -1)

        def spatial(t):  # [B, h, N, hd] -> [B * n_t, h, n_s, hd]
            t = t[:, h:].reshape(B, h, n_t, n_s, self.head_dims)
            return t.transpose(1, 2).reshape(B * n_t, h, n_s, -1)

        y_t = self._attend(temporal(q), temporal(k), temporal(v))
        y_s = self._attend(spatial(q), spatial(k), spatial(v))
        # back to [B, h, N, hd]
        y_t = y_t.reshape(B, n_s, h, n_t, -1).permute(0, 2, 3, 1, 4)
        y_s = y_s.reshape(B, n_t, h, n_s, -1).transpose(1, 2)
        y = torch.cat([y_t.reshape(B, h, n_t * n_s, -1),
                       y_s.reshape(B, h, n_t * n_s, -1)], dim=1)
        return self._merge_heads(y)
