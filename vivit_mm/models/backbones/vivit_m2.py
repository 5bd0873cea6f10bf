import torch
from mmaction.registry import MODELS

from ...utils import checks
from .base import BaseViViT, Encoder


@MODELS.register_module()
class ViViTM2(BaseViViT):
    """ViViT Model 2: factorised encoder (paper section 3.3, Fig. 4).

    Two ViT encoders (see :class:`~vivit_mm.models.backbones.base.Encoder`)
    in series. The spatial encoder (the image ViT: ``num_layers`` blocks, its
    own CLS token, an ``n_h * n_w`` (+1) position table shared by all
    temporal indices, its own final norm) runs on the tokens of each temporal
    index separately, ``[B * n_t, n_h * n_w, D]``, and yields one vector per
    index (its CLS output, or the mean of its tokens with ``pooling='gap'``).
    The ``n_t`` vectors go through the temporal encoder
    (``num_temporal_layers`` blocks with its own CLS token, 1D position table
    and final norm) whose CLS output (or mean) is the feature.

    With ``num_temporal_layers=0`` there is no temporal encoder and the
    per-frame vectors are averaged: the paper's average-pool baseline.

    Attribute names: the spatial encoder uses the image ViT's names
    (``cls_token``, ``pos_embed``, ``layers``, ``norm``); the temporal encoder
    prefixes them with ``temporal_``.

    Args:
        num_temporal_layers (int): Temporal encoder depth L_t. Defaults to 4,
            as the paper.
        **kwargs: As :class:`BaseViViT`. ``pooling`` applies to both
            encoders; ``drop_path_rate`` rises linearly within each encoder.
    """
    paper_model = 2
    default_pooling = 'token'

    def __init__(self, *args, num_temporal_layers: int = 4,
                 **kwargs) -> None:
        self.num_temporal_layers = checks.non_negative_int(
            num_temporal_layers, 'num_temporal_layers',
            hint=' (0 is the average-pool baseline)')
        super().__init__(*args, **kwargs)

    def _build_encoders(self) -> None:
        n_t, n_h, n_w = self.grid
        # One image ViT applied to every temporal index, then one encoder
        # over the n_t per-frame vectors.
        self._add_encoder(Encoder('', (1, n_h, n_w), self.num_layers,
                                  resize_time=False))
        if self.num_temporal_layers > 0:
            self._add_encoder(Encoder('temporal_', (n_t, 1, 1),
                                      self.num_temporal_layers,
                                      resize_space=False))

    def _forward_blocks(self, tokens: torch.Tensor, grid, wanted):
        """The spatial encoder on each temporal index's tokens
        ``[B * n_t, n_s, D]``, then (if a temporal block is wanted) the
        temporal encoder on the ``n_t`` per-index vectors ``[B, n_t, D]``;
        blocks are numbered spatial first, then temporal."""
        B, n_t = tokens.shape[:2]
        depth = self.num_layers
        spatial_grid, temporal_grid = (self.encoder_grid(0, grid),
                                       self.encoder_grid(-1, grid))
        temporal = {i - depth for i in wanted if i >= depth}
        keep = {i for i in wanted if i < depth} | (
            {depth - 1} if temporal else set())
        outs = self._run_encoder(tokens.flatten(0, 1), 0, spatial_grid,
                                 keep)  # each [B * n_t, extra + n_s, D]
        blocks = {i: (x, n_t, spatial_grid) for i, x in outs.items()
                  if i in wanted}
        if temporal:
            frames = self._pool(outs[depth - 1]).reshape(B, n_t, -1)
            outs = self._run_encoder(frames, 1, temporal_grid, temporal)
            blocks.update({depth + i: (x, 1, temporal_grid)
                           for i, x in outs.items()})
        return blocks

    def forward_spatial(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial encoder alone: ``[B, C, T, H, W]`` -> one vector per
        temporal index, ``[B, n_t, D]``."""
        grid = self.token_grid(x)
        tokens = self.patch_embed(x)  # [B, n_t, n_s, D]
        B, n_t = tokens.shape[:2]
        last = self.num_layers - 1
        frames = self._run_encoder(tokens.flatten(0, 1), 0,
                                   self.encoder_grid(0, grid), {last})[last]
        return self._pool(frames).reshape(B, n_t, -1)
