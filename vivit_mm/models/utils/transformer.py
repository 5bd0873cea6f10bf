"""The pre-LayerNorm transformer block every ViViT variant stacks.

A block is one or more attention sub-layers, each ``x += drop_path(attn(
norm(x)))``, then the MLP, ``x += drop_path(mlp(norm2(x)))``. What differs
between the variants is only which tokens each attention sees (its
``head_axes``, see :class:`MultiheadSelfAttention`) and, for Model 3, that
there are two attention sub-layers:

=================  ==========================================================
variant            attention sub-layers (``name``: head axes)
=================  ==========================================================
Models 1, 2        ``attn``: all
Model 3            ``attn``: space, then ``temporal_attn``: time (or reversed)
Model 4            ``attn``: first half of the heads time, second half space
=================  ==========================================================

The first sub-layer is always ``norm1``/``attn``, the names of an image ViT
block, so image weights map onto it unchanged; the others are
``<prefix>_norm``/``<prefix>_attn``.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn

from .attention import MultiheadSelfAttention

#: The official models' activation (flax ``gelu`` is the tanh approximation).
DEFAULT_ACT_CFG = dict(type='GELU', approximate='tanh')
#: The official models' LayerNorm.
DEFAULT_NORM_CFG = dict(type='LN', eps=1e-6)
#: ``(attention name, head axes)`` of a plain ViT block.
JOINT_ATTENTION = (('attn', ('all', )), )

AttentionLayout = Sequence[Tuple[str, Sequence[str]]]


def build_norm(norm_cfg: dict, dims: int) -> nn.Module:
    """The normalisation layer ``norm_cfg`` describes, over ``dims``."""
    return build_norm_layer(norm_cfg, dims)[1]


def norm_name(attn_name: str) -> str:
    """The LayerNorm in front of an attention sub-layer: ``norm1`` for
    ``attn`` (the image ViT's names), ``<prefix>_norm`` for
    ``<prefix>_attn``."""
    if attn_name == 'attn':
        return 'norm1'
    if not attn_name.endswith('_attn'):
        raise ValueError(f"attention names are 'attn' or '<prefix>_attn', "
                         f'got {attn_name!r}.')
    return attn_name[:-len('attn')] + 'norm'


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
    """A pre-LN ViT block with one or more attention sub-layers.

    Args:
        embed_dims (int): Token width D.
        num_heads (int): Attention heads.
        feedforward_channels (int): MLP hidden width.
        drop_rate (float): Dropout after the attention projections and in
            the MLP.
        attn_drop_rate (float): Dropout on attention probabilities.
        drop_path_rate (float): Stochastic depth of this block (every
            residual branch).
        qkv_bias (bool): Bias in the q/k/v projections.
        act_cfg (dict): MLP activation.
        norm_cfg (dict): Normalisation layers.
        fused_attn (bool): Use the fused SDPA kernel.
        attention (Sequence[tuple[str, Sequence[str]]]): The attention
            sub-layers in the order they run, as ``(name, head_axes)``; one
            of them must be ``'attn'``. Defaults to joint attention.
        grid (tuple[int, int], optional): ``(n_t, n_s)`` of the time-major
            tokens, needed by attention over space or time.
    """

    def __init__(self,
                 embed_dims: int, num_heads: int, feedforward_channels: int,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, qkv_bias: bool = True,
                 act_cfg: dict = DEFAULT_ACT_CFG,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 fused_attn: bool = True,
                 attention: AttentionLayout = JOINT_ATTENTION,
                 grid: Optional[Tuple[int, int]] = None) -> None:
        super().__init__()
        layout = [(name, tuple(axes)) for name, axes in attention]
        names = [name for name, _ in layout]
        if 'attn' not in names or len(set(names)) != len(names):
            raise ValueError("attention needs one sub-layer named 'attn' and "
                             f'unique names, got {names}.')
        self.attention_order = tuple(names)

        def add(name: str, axes: Tuple[str, ...]) -> None:
            self.add_module(norm_name(name), build_norm(norm_cfg, embed_dims))
            self.add_module(name, MultiheadSelfAttention(
                embed_dims, num_heads, qkv_bias=qkv_bias,
                attn_drop=attn_drop_rate, proj_drop=drop_rate,
                fused=fused_attn, head_axes=axes, grid=grid))

        # The image ViT's sub-layer first, then the MLP, then the others:
        # the registration order fixes the order of initialisation.
        add('attn', dict(layout)['attn'])
        self.drop_path = (DropPath(drop_path_rate)
                          if drop_path_rate > 0 else nn.Identity())
        self.norm2 = build_norm(norm_cfg, embed_dims)
        self.mlp = FFN(embed_dims, feedforward_channels, act_cfg, drop_rate)
        for name, axes in layout:
            if name != 'attn':
                add(name, axes)

    def forward(self, x: torch.Tensor,
                grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``; ``grid``: the ``(n_t, n_s)`` of ``x``
        when it differs from the built one (see
        :meth:`MultiheadSelfAttention.forward`)."""
        for name in self.attention_order:
            attn, norm = getattr(self, name), getattr(self, norm_name(name))
            y = attn(norm(x)) if grid is None else attn(norm(x), grid)
            x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


def drop_path_rates(drop_path_rate: float, num_layers: int) -> Sequence[float]:
    """Stochastic depth rising linearly from 0 at the first block to
    ``drop_path_rate`` at the last (scenic: ``l / (L - 1) * p``)."""
    if num_layers == 1:
        return [0.0]
    return [drop_path_rate * i / (num_layers - 1) for i in range(num_layers)]
