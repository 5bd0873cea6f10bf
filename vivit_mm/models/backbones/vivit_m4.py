from mmaction.registry import MODELS
from torch import nn

from ..utils.transformer import build_factorised_dot_product_block
from .base import BaseViViT


@MODELS.register_module()
class ViViTM4(BaseViViT):
    """ViViT Model 4: factorised dot-product attention (paper section 3.3,
    Fig. 5).

    The blocks have exactly a ViT block's parameters, but in every attention
    the first half of the heads attends only over time (tokens of the same
    spatial index) and the second half only over space (tokens of the same
    temporal index), as in the official code. There is no CLS token; the
    feature is the mean of the final-normed tokens.

    Args: as :class:`BaseViViT`; ``num_heads`` must be even and ``pooling``
        must be ``'gap'``.
    """
    default_pooling = 'gap'
    allowed_poolings = ('gap', )

    def _build_block(self, drop_path_rate: float) -> nn.Module:
        return build_factorised_dot_product_block(
            grid=(self.num_temporal_tokens, self.num_spatial_tokens),
            **self._block_kwargs(drop_path_rate))
