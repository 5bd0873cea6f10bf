"""Position-embedding surgery: resize a 2D (spatial) table, tile it over
time, split off the CLS entry.

All functions are pure (they return new tensors, never modify their inputs)
and return the input unchanged when there is nothing to do.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

#: Interpolation modes :func:`resize_pos_embed_grid` accepts.
INTERPOLATIONS = ('bicubic', 'bilinear')


def split_extra_tokens(pos_embed: torch.Tensor, num_extra_tokens: int
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split ``[1, extra + N, D]`` into the extra (CLS) entries
    ``[1, extra, D]`` and the token entries ``[1, N, D]``."""
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f'pos_embed must have shape [1, L, D], got '
                         f'{list(pos_embed.shape)}.')
    if not 0 <= num_extra_tokens <= pos_embed.shape[1]:
        raise ValueError(f'num_extra_tokens must be in [0, '
                         f'{pos_embed.shape[1]}], got {num_extra_tokens}.')
    return pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]


def resize_pos_embed_grid(pos_embed: torch.Tensor,
                          src_grid: Sequence[int],
                          dst_grid: Sequence[int],
                          mode: str = 'bicubic') -> torch.Tensor:
    """Resize a spatial position table ``[1, h*w, D] -> [1, h'*w', D]``.

    The table is read row-major as an ``h x w`` image with ``D`` channels and
    resized with ``F.interpolate(mode, align_corners=False)``; this is the
    resize mmpretrain's and timm's ViTs apply when they run at another
    resolution (timm adds anti-aliasing, which only matters when shrinking).

    Args:
        pos_embed (torch.Tensor): ``[1, h*w, D]``, no extra (CLS) entries.
        src_grid (tuple[int, int]): ``(h, w)`` of ``pos_embed``.
        dst_grid (tuple[int, int]): ``(h', w')`` wanted.
        mode (str): ``'bicubic'`` (default) or ``'bilinear'``.

    Returns:
        torch.Tensor: ``pos_embed`` itself when the grids are equal, else a
        new ``[1, h'*w', D]`` tensor of the same dtype.
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, '
                         f'got {mode!r}.')
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f'pos_embed must have shape [1, N, D], got '
                         f'{list(pos_embed.shape)}.')
    if pos_embed.shape[1] != src_grid[0] * src_grid[1]:
        raise ValueError(
            f'pos_embed has {pos_embed.shape[1]} entries, which is not the '
            f'{src_grid[0]}x{src_grid[1]} grid it is said to hold.')
    if src_grid == dst_grid:
        return pos_embed
    D = pos_embed.shape[2]
    grid = pos_embed.reshape(1, *src_grid, D).permute(0, 3, 1, 2)
    # bicubic needs float32/float64 on CPU.
    work = grid if grid.dtype in (torch.float32, torch.float64) \
        else grid.float()
    out = F.interpolate(work, size=dst_grid, mode=mode, align_corners=False)
    return out.flatten(2).transpose(1, 2).to(pos_embed.dtype)


def tile_pos_embed(pos_embed: torch.Tensor,
                   num_temporal_tokens: int) -> torch.Tensor:
    """Repeat a spatial table over time, time-major:
    ``[1, N_s, D] -> [1, n_t * N_s, D]`` with entry ``t * N_s + s`` equal to
    entry ``s``. Returns the input when ``num_temporal_tokens == 1``."""
    if num_temporal_tokens < 1:
        raise ValueError(f'num_temporal_tokens must be >= 1, got '
                         f'{num_temporal_tokens}.')
    if num_temporal_tokens == 1:
        return pos_embed
    return pos_embed.repeat(1, num_temporal_tokens, 1)
