"""Pre-LayerNorm transformer blocks used by every ViViT variant."""
from typing import Optional, Sequence, Tuple

import torch
from einops import rearrange
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn

from .attention import FactorisedDotProductAttention, MultiheadSelfAttention

#: The official models' activation (flax ``gelu`` is the tanh approximation).
DEFAULT_ACT_CFG = dict(type='GELU', approximate='tanh')
#: The official models' LayerNorm.
DEFAULT_NORM_CFG = dict(type='LN', eps=1e-6)


def _norm(norm_cfg: dict, dims: int) -> nn.Module:
    return build_norm_layer(norm_cfg, dims)[1]


class FFN(nn.Module):
    """The ViT MLP: ``fc1 -> act -> dropout -> fc2 -> dropout``."""

    def __init__(self, embed_dims: int, feedforward_channels: int,
                 act_cfg: dict, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """A pre-LN ViT block:
    ``x += drop_path(attn(norm1(x))); x += drop_path(mlp(norm2(x)))``.

    Args:
        embed_dims (int): Token width D.
        num_heads (int): Attention heads.
        feedforward_channels (int): MLP hidden width.
        drop_rate (float): Dropout after the attention projection and in
            the MLP.
        attn_drop_rate (float): Dropout on attention probabilities.
        drop_path_rate (float): Stochastic depth of this block.
        qkv_bias (bool): Bias in the q/k/v projection.
        act_cfg (dict): MLP activation.
        norm_cfg (dict): Normalisation layers.
        fused_attn (bool): Use the fused SDPA kernel.
        attn (nn.Module, optional): Replaces the default joint attention
            (Model 4 passes its factorised dot-product attention).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0,
                 qkv_bias: bool = True,
                 act_cfg: dict = DEFAULT_ACT_CFG,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 fused_attn: bool = True,
                 attn: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.norm1 = _norm(norm_cfg, embed_dims)
        self.attn = attn if attn is not None else MultiheadSelfAttention(
            embed_dims, num_heads, qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate, proj_drop=drop_rate, fused=fused_attn)
        self.drop_path = (DropPath(drop_path_rate)
                          if drop_path_rate > 0 else nn.Identity())
        self.norm2 = _norm(norm_cfg, embed_dims)
        self.mlp = FFN(embed_dims, feedforward_channels, act_cfg, drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class FactorisedSelfAttentionBlock(TransformerBlock):
    """Model 3's block (paper section 3.3, Fig. 4).

    Self-attention over space (tokens of one temporal index), then over time
    (tokens of one spatial index), each with its own LayerNorm and residual,
    then the MLP. ``norm1``/``attn`` are the spatial attention, named as in an
    image ViT block so image weights map onto them unchanged;
    ``temporal_norm``/``temporal_attn`` are the temporal attention.

    Args:
        grid (tuple[int, int]): ``(n_t, n_s)``; tokens are time-major.
        order (str): ``'space_time'`` (default) or ``'time_space'``.
        **kwargs: As :class:`TransformerBlock`.
    """

    ORDERS = ('space_time', 'time_space')

    def __init__(self, grid: Tuple[int, int], order: str = 'space_time',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if order not in self.ORDERS:
            raise ValueError(f'attention_order must be one of {self.ORDERS}, '
                             f'got {order!r}.')
        self.grid = tuple(grid)
        self.order = order
        attn = self.attn
        self.temporal_norm = _norm(kwargs.get('norm_cfg', DEFAULT_NORM_CFG),
                                   attn.embed_dims)
        self.temporal_attn = MultiheadSelfAttention(
            attn.embed_dims, attn.num_heads, qkv_bias=attn.qkv.bias is not None,
            attn_drop=attn.attn_drop, proj_drop=attn.proj_drop.p,
            fused=attn.fused)

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        n_t, _ = self.grid
        y = rearrange(x, 'b (t s) d -> (b t) s d', t=n_t)  # [B*n_t, n_s, D]
        y = self.attn(self.norm1(y))
        return x + self.drop_path(rearrange(y, '(b t) s d -> b (t s) d',
                                            t=n_t))

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        n_t, n_s = self.grid
        y = rearrange(x, 'b (t s) d -> (b s) t d', t=n_t)  # [B*n_s, n_t, D]
        y = self.temporal_attn(self.temporal_norm(y))
        return x + self.drop_path(rearrange(y, '(b s) t d -> b (t s) d',
                                            s=n_s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n_t * n_s, D] -> [B, n_t * n_s, D]``."""
        if self.order == 'space_time':
            x = self._temporal(self._spatial(x))
        else:
            x = self._spatial(self._temporal(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def build_factorised_dot_product_block(grid: Tuple[int, int],
                                       **kwargs) -> TransformerBlock:
    """A :class:`TransformerBlock` whose attention is Model 4's."""
    attn = FactorisedDotProductAttention(
        kwargs['embed_dims'], kwargs['num_heads'], grid,
        qkv_bias=kwargs.get('qkv_bias', True),
        attn_drop=kwargs.get('attn_drop_rate', 0.0),
        proj_drop=kwargs.get('drop_rate', 0.0),
        fused=kwargs.get('fused_attn', True))
    return TransformerBlock(attn=attn, **kwargs)


def drop_path_rates(drop_path_rate: float, num_layers: int) -> Sequence[float]:
    """Stochastic depth rising linearly from 0 at the first block to
    ``drop_path_rate`` at the last (scenic: ``l / (L - 1) * p``)."""
    if num_layers == 1:
        return [0.0]
    return [drop_path_rate * i / (num_layers - 1) for i in range(num_layers)]
