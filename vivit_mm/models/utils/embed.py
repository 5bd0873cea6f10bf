"""ViViT's two tokenisers (paper section 3.2).

Both map a video ``[B, C, T, H, W]`` to tokens ``[B, n_t, n_h * n_w, D]``
(time-major, spatial index row-major), the layout every variant consumes.
The tokens are returned contiguous: the convolution yields channels first,
and a permuted view would make every later elementwise op (position
embedding, residual adds) keep that transposed layout, so that LayerNorms,
linears and reshapes pay a strided copy in every block.
"""
from typing import Tuple

import torch
from einops import rearrange
from torch import nn


class TubeletEmbedding(nn.Module):
    """Tubelet embedding (paper Fig. 3): non-overlapping ``t x p x p`` tubes,
    linearly projected by a Conv3d with kernel = stride = ``(t, p, p)``.

    Args:
        in_channels (int): Input channels C.
        embed_dims (int): Token width D.
        patch_size (tuple[int, int]): Spatial patch ``(p_h, p_w)``.
        tubelet_size (int): Temporal extent t.
    """

    def __init__(self, in_channels: int, embed_dims: int,
                 patch_size: Tuple[int, int], tubelet_size: int) -> None:
        super().__init__()
        kernel = (tubelet_size, *patch_size)
        self.projection = nn.Conv3d(in_channels, embed_dims, kernel, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection(x)  # [B, D, n_t, n_h, n_w]
        return rearrange(x, 'b d t h w -> b t (h w) d').contiguous()


class UniformFrameEmbedding(nn.Module):
    """Uniform frame sampling (paper Fig. 2): every frame embedded on its own
    with ViT's 2D patch embedding (a Conv2d, kernel = stride = ``p``).

    Args:
        in_channels (int): Input channels C.
        embed_dims (int): Token width D.
        patch_size (tuple[int, int]): Spatial patch ``(p_h, p_w)``.
    """

    def __init__(self, in_channels: int, embed_dims: int,
                 patch_size: Tuple[int, int]) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size,
                                    patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[2]
        x = rearrange(x, 'b c t h w -> (b t) c h w')
        x = self.projection(x)  # [B*T, D, n_h, n_w]
        return rearrange(x, '(b t) d h w -> b t (h w) d', t=T).contiguous()
