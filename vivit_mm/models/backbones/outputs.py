"""What a ViViT backbone returns: ``out_type`` and ``out_indices`` with
mmpretrain's ``VisionTransformer`` meaning.

Blocks are numbered across the encoders as in :mod:`.stages` (Model 2:
spatial blocks, then temporal ones); ``-1`` is the last block. An encoder's
last block is read after that encoder's final norm, any other block as it
leaves the block (as mmpretrain). For one block output ``x`` of
``[B * r, extra + n, D]`` tokens (``extra`` = 1 with a CLS token; ``r`` = 1,
or ``n_t`` for Model 2's spatial encoder, which runs on each temporal index
on its own) on the encoder's grid ``(t, h, w)``:

* ``'raw'``: the tokens, CLS first: ``[B, extra + n, D]``; for Model 2's
  spatial blocks ``[B, n_t, extra + n_h * n_w, D]`` (each temporal index's
  tokens);
* ``'featmap'``: the tokens without the CLS token on their grid,
  ``[B, D, n_t, n_h, n_w]`` (Model 2's temporal blocks:
  ``[B, D, n_t, 1, 1]``);
* ``'cls_token'``: the CLS token, ``[B, D]`` (needs ``pooling='token'``);
* ``'avg_featmap'``: the mean of the tokens without the CLS token,
  ``[B, D]``.

The two pooled types of a Model 2 spatial block are averaged over the
temporal indices (the paper's average-pool baseline), so that they are
``[B, D]`` as everywhere; with ``num_temporal_layers=0`` that is the
feature the backbone has always returned.
"""
from typing import List, Sequence, Tuple, Union

import torch

#: The output types, as mmpretrain's ``VisionTransformer.OUT_TYPES``.
OUT_TYPES = ('raw', 'featmap', 'cls_token', 'avg_featmap')
#: The pooled output each ``pooling`` gives by default.
DEFAULT_OUT_TYPE = dict(token='cls_token', gap='avg_featmap')


def check_out_type(out_type, pooling: str, where: str) -> str:
    """``out_type`` (None: the one of ``pooling``), checked."""
    if out_type is None:
        return DEFAULT_OUT_TYPE[pooling]
    if out_type not in OUT_TYPES:
        raise ValueError(f'{where}: out_type must be None or one of '
                         f'{OUT_TYPES}, got {out_type!r}.')
    if out_type == 'cls_token' and pooling != 'token':
        raise ValueError(f"{where}: out_type='cls_token' needs "
                         f"pooling='token' (a CLS token), got pooling="
                         f"{pooling!r}; use out_type='avg_featmap'.")
    return out_type


def check_out_indices(out_indices: Union[int, Sequence[int]],
                      num_blocks: int, where: str) -> Tuple[List[int], bool]:
    """The block indices ``out_indices`` names, in ``[0, num_blocks)``,
    ascending and without repeats, and whether it was one int (then the
    backbone returns one tensor, else a tuple)."""
    single = not isinstance(out_indices, (list, tuple))
    values = [out_indices] if single else list(out_indices)
    ok = bool(values) and all(
        isinstance(i, int) and not isinstance(i, bool)
        and -num_blocks <= i < num_blocks for i in values)
    if not ok:
        raise ValueError(
            f'{where}: out_indices must be an int or a non-empty list of '
            f'ints in [-{num_blocks}, {num_blocks - 1}] (block indices; -1 '
            f'is the last block), got {out_indices!r}.')
    return sorted({i % num_blocks for i in values}), single


def format_output(x: torch.Tensor, batch: int, repeats: int,
                  grid: Tuple[int, int, int], extra: int,
                  out_type: str) -> torch.Tensor:
    """One block output ``x`` ``[batch * repeats, extra + n, D]`` on the
    token grid ``grid`` as ``out_type`` (see the module docstring)."""
    D = x.shape[-1]
    if out_type == 'raw':
        return x if repeats == 1 else x.reshape(batch, repeats, -1, D)
    if out_type == 'featmap':
        t, h, w = grid
        # [B * r, t * h * w, D] -> [B, D, r * t, h, w]
        return x[:, extra:].reshape(batch, repeats * t, h, w, D).permute(
            0, 4, 1, 2, 3)
    pooled = x[:, 0] if out_type == 'cls_token' else x[:, extra:].mean(1)
    return pooled.reshape(batch, repeats, D).mean(1) if repeats > 1 \
        else pooled
