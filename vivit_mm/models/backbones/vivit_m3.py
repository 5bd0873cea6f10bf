from mmaction.registry import MODELS
from torch import nn

from ..utils.transformer import FactorisedSelfAttentionBlock
from .base import BaseViViT


@MODELS.register_module()
class ViViTM3(BaseViViT):
    """ViViT Model 3: factorised self-attention (paper section 3.3, Fig. 4).

    Each block attends over space (tokens of one temporal index, reshaped to
    ``[B * n_t, n_h * n_w, D]``), then over time (tokens of one spatial index,
    ``[B * n_h * n_w, n_t, D]``), then applies the MLP. There is no CLS token;
    the feature is the mean of the final-normed tokens.

    Args:
        attention_order (str): ``'space_time'`` (default) or
            ``'time_space'``; the paper reports little difference.
        **kwargs: As :class:`BaseViViT`; ``pooling`` must be ``'gap'``.
    """
    default_pooling = 'gap'
    allowed_poolings = ('gap', )

    def __init__(self, *args, attention_order: str = 'space_time',
                 **kwargs) -> None:
        if attention_order not in FactorisedSelfAttentionBlock.ORDERS:
            raise ValueError(
                f'attention_order must be one of '
                f'{FactorisedSelfAttentionBlock.ORDERS}, got '
                f'{attention_order!r}.')
        self.attention_order = attention_order
        super().__init__(*args, **kwargs)

    def _build_block(self, drop_path_rate: float) -> nn.Module:
        return FactorisedSelfAttentionBlock(
            grid=(self.num_temporal_tokens, self.num_spatial_tokens),
            order=self.attention_order,
            **self._block_kwargs(drop_path_rate))
