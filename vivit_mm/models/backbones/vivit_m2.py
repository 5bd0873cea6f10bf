import torch
from mmaction.registry import MODELS
from torch import nn

from ..utils.transformer import _norm
from .base import BaseViViT


@MODELS.register_module()
class ViViTM2(BaseViViT):
    """ViViT Model 2: factorised encoder (paper section 3.3, Fig. 4).

    A spatial encoder (the image ViT: ``num_layers`` blocks, its own CLS
    token, an ``n_h * n_w`` (+1) position embedding shared by all temporal
    indices, its own final norm) runs on the tokens of each temporal index
    separately, ``[B * n_t, n_h * n_w, D]``, and yields one vector per index
    (its CLS output, or the mean of its tokens with ``pooling='gap'``). The
    ``n_t`` vectors go through a temporal encoder (``num_temporal_layers``
    blocks with its own CLS token, 1D position embedding and final norm)
    whose CLS output (or mean) is the feature.

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
    default_pooling = 'token'

    def __init__(self, *args, num_temporal_layers: int = 4,
                 **kwargs) -> None:
        if (not isinstance(num_temporal_layers, int)
                or isinstance(num_temporal_layers, bool)
                or num_temporal_layers < 0):
            raise ValueError('num_temporal_layers must be an int >= 0 (0 is '
                             'the average-pool baseline), got '
                             f'{num_temporal_layers!r}.')
        self.num_temporal_layers = num_temporal_layers
        super().__init__(*args, **kwargs)

    def _build_encoder(self) -> None:
        D, token = self.embed_dims, self.pooling == 'token'
        # Spatial encoder: one image ViT applied to every temporal index.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if token else None
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_spatial_tokens + self.num_extra_tokens,
                        D))
        self.drop_after_pos = nn.Dropout(self.drop_rate)
        self.layers = self._build_stack(self.num_layers, self._build_block)
        self.norm = _norm(self.norm_cfg, D)
        # Temporal encoder over the n_t per-frame vectors.
        if self.num_temporal_layers > 0:
            self.temporal_cls_token = (nn.Parameter(torch.zeros(1, 1, D))
                                       if token else None)
            self.temporal_pos_embed = nn.Parameter(
                torch.zeros(1, self.num_temporal_tokens +
                            self.num_extra_tokens, D))
            self.temporal_layers = self._build_stack(self.num_temporal_layers,
                                                     self._build_block)
            self.temporal_norm = _norm(self.norm_cfg, D)

    def pos_embed_tables(self):
        """The spatial encoder's table (one frame's grid, resizable over
        space) and the temporal encoder's (``n_t`` entries, resizable over
        time); see :meth:`BaseViViT.pos_embed_tables`."""
        n_t, n_h, n_w = self.grid
        tables = [('pos_embed', (1, n_h, n_w), False, True)]
        if self.num_temporal_layers > 0:
            tables.append(('temporal_pos_embed', (n_t, 1, 1), True, False))
        return tables

    def forward_spatial(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial encoder alone: ``[B, C, T, H, W]`` -> one vector per
        temporal index, ``[B, n_t, D]``."""
        self._check_input(x)
        tokens = self.patch_embed(x)  # [B, n_t, n_s, D]
        B, n_t = tokens.shape[:2]
        frames = self._encode(tokens.flatten(0, 1), self.cls_token,
                              self.pos_embed, self.layers,
                              self.norm)  # [B * n_t, D]
        return frames.reshape(B, n_t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, H, W]`` -> ``[B, D]``."""
        frames = self.forward_spatial(x)  # [B, n_t, D]
        if self.num_temporal_layers == 0:
            return frames.mean(dim=1)
        return self._encode(frames, self.temporal_cls_token,
                            self.temporal_pos_embed, self.temporal_layers,
                            self.temporal_norm)
