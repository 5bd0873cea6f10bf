from mmaction.registry import MODELS

from .base import BaseViViT


@MODELS.register_module()
class ViViTM4(BaseViViT):
    """ViViT Model 4: factorised dot-product attention (paper section 3.3,
    Fig. 5).

    The blocks have exactly a ViT block's parameters, but in every attention
    the first half of the heads attends only over time (tokens of the same
    spatial index) and the second half only over space (tokens of the same
    temporal index), as in the official code; the head outputs are
    concatenated and projected by the usual output projection. There is no
    CLS token; the feature is the mean of the final-normed tokens.

    Args: as :class:`BaseViViT`; ``num_heads`` must be even and ``pooling``
        must be ``'gap'``.
    """
    paper_model = 4
    default_pooling = 'gap'
    allowed_poolings = ('gap', )

    def attention_layout(self):
        """One attention whose heads split half time, half space."""
        return [('attn', ('time', 'space'))]
