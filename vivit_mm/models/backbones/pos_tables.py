"""Position tables made for another token grid: resized when a checkpoint
is loaded, and (with ``interpolate_pos_embed=True``) at run time for inputs
of another number of frames or resolution. Both use one function,
:func:`~vivit_mm.models.utils.pos_embed.resize_pos_table`."""
import logging
from typing import Dict, Tuple

import torch
from mmengine.logging import print_log

from ..utils.pos_embed import infer_token_grid, resize_pos_table

#: Run-time tables kept per backbone (one per encoder and input grid).
MAX_CACHED_TABLES = 8


class PosTablesMixin:
    """The load-time pre-hook and the run-time resize of
    :class:`~.base.BaseViViT`'s position tables."""

    def _resize_pos_embeds(self, state_dict, prefix, *args, **kwargs) -> None:
        """Load-time pre-hook: resize a checkpoint's position tables made
        for another number of frames (linear over time) or resolution
        (bicubic over space) to this backbone's grid, and log it."""
        for encoder in self.encoders:
            name, grid = encoder.key('pos_embed'), encoder.grid
            key = prefix + name
            table = state_dict.get(key, None)
            ours = getattr(self, name)
            if not torch.is_tensor(table) or table.shape == ours.shape:
                continue
            extra = self.num_extra_tokens
            if table.dim() != 3 or table.shape[0] != 1 \
                    or table.shape[2] != ours.shape[2] \
                    or table.shape[1] <= extra:
                continue  # not a resizable table: load_state_dict reports
            try:
                src = infer_token_grid(table.shape[1] - extra, grid,
                                       temporal=encoder.resize_time,
                                       spatial=encoder.resize_space)
            except ValueError as e:
                raise ValueError(
                    f'Loading {key} of shape {list(table.shape)} into shape '
                    f'{list(ours.shape)}: {e} (To start from an image ViT '
                    'checkpoint, use ViViTInitHook or '
                    'vivit_mm.inflate_image_weights, not load_from or '
                    'init_cfg.)') from None
            state_dict[key] = resize_pos_table(table, extra, src, grid)
            how = ([] if src[1:] == grid[1:] else ['bicubic over space']) + \
                ([] if src[0] == grid[0] else ['linear over time'])
            print_log(
                f'{type(self).__name__}: resized {key} from the '
                f'(n_t, n_h, n_w) = {src} grid of the checkpoint to {grid} '
                f'({", ".join(how)}).',
                logger='current', level=logging.WARNING)

    def encoder_grid(self, k: int,
                     grid: Tuple[int, int, int]) -> Tuple[int, int, int]:
        """The token grid of encoder ``k`` for an input whose token grid is
        ``grid``: ``grid`` itself for Models 1, 3, 4; ``(1, n_h, n_w)`` for
        Model 2's spatial encoder and ``(n_t, 1, 1)`` for its temporal
        one."""
        encoder = self.encoders[k]
        return (grid[0] if encoder.resize_time else encoder.grid[0],
                grid[1] if encoder.resize_space else encoder.grid[1],
                grid[2] if encoder.resize_space else encoder.grid[2])

    def pos_embed_at(self, k: int,
                     grid: Tuple[int, int, int]) -> torch.Tensor:
        """Encoder ``k``'s position table for its token grid ``grid``: the
        parameter itself on the built grid, else the parameter resized by
        :func:`resize_pos_table`.

        With gradients enabled the resize is recomputed on every call, so
        gradients reach the parameter. Without them (evaluation, inference)
        it is kept per grid and reused while the parameter is the same
        tensor at the same version, i.e. until an optimizer step,
        ``load_state_dict`` or any other in-place change, or a move to
        another device or dtype.
        """
        encoder = self.encoders[k]
        table = getattr(self, encoder.key('pos_embed'))
        if tuple(grid) == encoder.grid:
            return table
        resize = (lambda: resize_pos_table(table, self.num_extra_tokens,
                                           encoder.grid, grid))
        if torch.is_grad_enabled():
            return resize()
        cache: Dict = self.__dict__.setdefault('_pos_table_cache', {})
        state = (id(table), table._version, table.data_ptr(), table.dtype,
                 table.device)
        hit = cache.get((k, tuple(grid)))
        if hit is None or hit[0] != state:
            if len(cache) >= MAX_CACHED_TABLES:
                cache.clear()
            hit = cache[(k, tuple(grid))] = (state, resize())
        return hit[1]
