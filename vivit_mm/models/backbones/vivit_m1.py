from mmaction.registry import MODELS

from .base import BaseViViT


@MODELS.register_module()
class ViViTM1(BaseViViT):
    """ViViT Model 1: spatio-temporal attention (paper section 3.3).

    All ``n_t * n_h * n_w`` tokens (plus a CLS token with the default
    ``pooling='token'``) go through one plain ViT encoder; every block attends
    jointly over space and time, so the cost is quadratic in all tokens.

    Args: as :class:`BaseViViT`.

    Example:
        >>> from mmaction.registry import MODELS
        >>> import vivit_mm  # registers the ViViT modules
        >>> model = MODELS.build(dict(type='ViViTM1', arch='b',
        ...                           num_frames=32, tubelet_size=2))
    """
    paper_model = 1
    default_pooling = 'token'
