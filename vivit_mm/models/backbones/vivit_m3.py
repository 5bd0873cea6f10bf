from mmaction.registry import MODELS

from ...utils import checks
from .base import BaseViViT


@MODELS.register_module()
class ViViTM3(BaseViViT):
    """ViViT Model 3: factorised self-attention (paper section 3.3, Fig. 4).

    Each block attends over space (tokens of one temporal index, grouped as
    ``[B * n_t, n_h * n_w, D]``), then over time (tokens of one spatial index,
    ``[B * n_h * n_w, n_t, D]``), each with its own LayerNorm and residual,
    then applies the MLP. The spatial attention has an image ViT block's
    names (``norm1``/``attn``), the temporal one is ``temporal_norm``/
    ``temporal_attn``. There is no CLS token; the feature is the mean of the
    final-normed tokens.

    Args:
        attention_order (str): ``'space_time'`` (default) or
            ``'time_space'``; the paper reports little difference. Scenic's
            default, and so that of the converted official checkpoints, is
            ``'time_space'``.
        **kwargs: As :class:`BaseViViT`; ``pooling`` must be ``'gap'``.
    """
    ORDERS = ('space_time', 'time_space')
    paper_model = 3
    default_pooling = 'gap'
    allowed_poolings = ('gap', )

    def __init__(self, *args, attention_order: str = 'space_time',
                 **kwargs) -> None:
        self.attention_order = checks.one_of(attention_order,
                                             'attention_order', self.ORDERS)
        super().__init__(*args, **kwargs)

    def attention_layout(self):
        """Spatial attention (``attn``) and temporal attention
        (``temporal_attn``), in ``attention_order``."""
        layout = [('attn', ('space', )), ('temporal_attn', ('time', ))]
        return layout if self.attention_order == 'space_time' \
            else layout[::-1]
