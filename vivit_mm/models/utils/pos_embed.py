"""Position-embedding surgery: resize a 2D (spatial) table, tile it over
time, split off the CLS entry.

All functions are pure (they return new tensors, never modify their inputs)
and return the input unchanged when there is nothing to do.
"""
import math
from typing import Optional, Sequence, Tuple

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


def _check_table(pos_embed: torch.Tensor, grid: Tuple[int, ...]) -> None:
    """``pos_embed`` is ``[1, N, D]`` with ``N`` the product of ``grid``."""
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f'pos_embed must have shape [1, N, D], got '
                         f'{list(pos_embed.shape)}.')
    if pos_embed.shape[1] != math.prod(grid):
        raise ValueError(
            f'pos_embed has {pos_embed.shape[1]} entries, which is not the '
            f'{"x".join(map(str, grid))} grid it is said to hold.')


def resize_pos_embed_grid(pos_embed: torch.Tensor,
                          src_grid: Sequence[int],
                          dst_grid: Sequence[int],
                          mode: str = 'bicubic') -> torch.Tensor:
    """Resize a spatial position table ``[1, h*w, D] -> [1, h'*w', D]``.

    This is mmpretrain's ``resize_pos_embed`` (the resize its ViT applies
    at another resolution: the table read row-major as an ``h x w`` image
    with ``D`` channels, ``F.interpolate(mode, align_corners=False)`` in
    float32), with the grids checked first.

    Args:
        pos_embed (torch.Tensor): ``[1, h*w, D]``, no extra (CLS) entries.
        src_grid (tuple[int, int]): ``(h, w)`` of ``pos_embed``.
        dst_grid (tuple[int, int]): ``(h', w')`` wanted.
        mode (str): ``'bicubic'`` (default, as mmpretrain and timm) or
            ``'bilinear'`` (as scenic).

    Returns:
        torch.Tensor: ``pos_embed`` itself when the grids are equal, else a
        new ``[1, h'*w', D]`` tensor of the same dtype.
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, '
                         f'got {mode!r}.')
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    _check_table(pos_embed, src_grid)
    if src_grid == dst_grid:
        return pos_embed
    # Imported here: mmpretrain's models package takes about a second to
    # import, and resizing happens only when a checkpoint is loaded.
    from mmpretrain.models.utils import resize_pos_embed
    return resize_pos_embed(pos_embed, src_grid, dst_grid, mode=mode,
                            num_extra_tokens=0)


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


def solve_token_grid(num_tokens: int,
                     n_t: Optional[int] = None,
                     spatial: Optional[Sequence[int]] = None,
                     aspect: Sequence[int] = (1, 1)
                     ) -> Optional[Tuple[int, int, int]]:
    """The ``(n_t, n_h, n_w)`` grid of ``num_tokens`` time-major tokens,
    given the number of temporal tokens ``n_t`` or the spatial grid
    ``spatial = (n_h, n_w)`` (or both, to check them); with only ``n_t``,
    the spatial grid is the one of aspect ratio ``aspect`` (square by
    default). None when no such grid holds ``num_tokens``.

    This is the one place that tells a position table's grid from its
    length: at load time (:func:`infer_token_grid`), for converted official
    checkpoints and for image ViTs.
    """
    if spatial is not None:
        n_h, n_w = (int(v) for v in spatial)
        if n_h < 1 or n_w < 1 or num_tokens % (n_h * n_w):
            return None
        t = num_tokens // (n_h * n_w)
        return (t, n_h, n_w) if n_t in (None, t) and t > 0 else None
    if n_t is None or n_t < 1 or num_tokens % n_t:
        return None
    per_frame = num_tokens // n_t
    a_h, a_w = (int(v) for v in aspect)
    # h * w = per_frame with h / w = a_h / a_w
    h = round((per_frame * a_h / a_w)**0.5)
    if h < 1 or per_frame % h or h * a_w != a_h * (per_frame // h):
        return None
    return n_t, h, per_frame // h


def infer_token_grid(num_tokens: int,
                     grid: Sequence[int],
                     temporal: bool = True,
                     spatial: bool = True) -> Tuple[int, int, int]:
    """The ``(n_t, n_h, n_w)`` grid of a position table with ``num_tokens``
    entries that was made for a model like one with ``grid``, where only
    the number of frames or only the resolution differs.

    Candidates: the same spatial grid with another ``n_t``, or the same
    ``n_t`` with a spatial grid of the same aspect ratio. A table that fits
    neither, or (rarely) both, cannot be placed without knowing the other
    model's input size, and raises ``ValueError``.

    Args:
        num_tokens (int): Entries of the table, extra (CLS) entries
            excluded.
        grid (tuple[int, int, int]): ``(n_t, n_h, n_w)`` of this model's
            table.
        temporal (bool): Whether ``n_t`` may differ (False for a purely
            spatial table such as Model 2's spatial encoder's).
        spatial (bool): Whether ``(n_h, n_w)`` may differ (False for
            Model 2's temporal table).
    """
    n_t, n_h, n_w = (int(g) for g in grid)
    if num_tokens == n_t * n_h * n_w:
        return n_t, n_h, n_w
    candidates = []
    if temporal:
        candidates.append(solve_token_grid(num_tokens, spatial=(n_h, n_w)))
    if spatial:
        candidates.append(solve_token_grid(num_tokens, n_t=n_t,
                                           aspect=(n_h, n_w)))
    candidates = sorted(set(c for c in candidates if c is not None))
    if len(candidates) != 1:
        why = ('it fits both ' + ' and '.join(map(str, candidates))
               if candidates else 'it is neither another number of temporal '
               'tokens on the same spatial grid nor the same number of '
               'temporal tokens on a spatial grid of the same aspect ratio')
        raise ValueError(
            f'Cannot resize a position embedding of {num_tokens} tokens to '
            f'the (n_t, n_h, n_w) = {(n_t, n_h, n_w)} grid: {why}. Build the '
            'backbone with the num_frames/img_size (and tubelet/patch '
            'size) of the checkpoint, or resize the table yourself with '
            'vivit_mm.models.utils.pos_embed.resize_pos_embed_3d.')
    return candidates[0]


def resize_pos_embed_3d(pos_embed: torch.Tensor,
                        src_grid: Sequence[int],
                        dst_grid: Sequence[int],
                        mode: str = 'bicubic') -> torch.Tensor:
    """Resize a time-major spatio-temporal position table
    ``[1, t*h*w, D] -> [1, t'*h'*w', D]`` (no extra entries).

    Each temporal slice is resized spatially as
    :func:`resize_pos_embed_grid` does (bicubic by default); then every
    spatial position is interpolated linearly over time
    (``F.interpolate(mode='linear', align_corners=False)``), which keeps a
    table that is constant over time constant. The two resizes act on
    different axes, so their order does not matter.

    Returns:
        torch.Tensor: ``pos_embed`` itself when the grids are equal.
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    _check_table(pos_embed, src_grid)
    t, h, w = src_grid
    T, H, W = dst_grid
    if src_grid == dst_grid:
        return pos_embed
    D = pos_embed.shape[2]
    dtype = pos_embed.dtype
    x = pos_embed.reshape(t, h * w, D)
    if (h, w) != (H, W):
        x = torch.cat([
            resize_pos_embed_grid(x[i:i + 1], (h, w), (H, W), mode)
            for i in range(t)
        ])  # [t, H*W, D]
    if t != T:
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        work = F.interpolate(work.permute(1, 2, 0), size=T, mode='linear',
                             align_corners=False)  # [H*W, D, T]
        x = work.permute(2, 0, 1)
    return x.reshape(1, T * H * W, D).to(dtype)


def resize_pos_table(pos_embed: torch.Tensor, num_extra_tokens: int,
                     src_grid: Sequence[int],
                     dst_grid: Sequence[int]) -> torch.Tensor:
    """Resize a backbone's position table ``[1, extra + t*h*w, D]`` to
    ``[1, extra + t'*h'*w', D]``: the extra (CLS) entries are kept, the
    token entries go through :func:`resize_pos_embed_3d`.

    This is the one resize of a ViViT position table: the load-time
    pre-hook applies it to a checkpoint's table, and
    ``interpolate_pos_embed=True`` applies it to the backbone's own table
    at run time. It is differentiable.

    Returns:
        torch.Tensor: ``pos_embed`` itself when the grids are equal.
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if src_grid == dst_grid:
        return pos_embed
    extra, entries = split_extra_tokens(pos_embed, num_extra_tokens)
    return torch.cat(
        [extra, resize_pos_embed_3d(entries, src_grid, dst_grid)], dim=1)
