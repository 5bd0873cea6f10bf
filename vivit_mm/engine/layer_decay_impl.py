"""The implementation behind
:class:`~vivit_mm.engine.layer_decay.ViViTLayerDecayOptimWrapperConstructor`
(imported when the first one is built, see there)."""
from functools import partial
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch import nn

from ..utils import checks
from .layer_decay import ViViTLayerDecayOptimWrapperConstructor

WHERE = 'ViViTLayerDecayOptimWrapperConstructor'


class LayerDecayConstructor(ViViTLayerDecayOptimWrapperConstructor,
                            LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's constructor with a recognizer's layer depths, checked
    options and ``lr_mult``."""

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        if checks.in_range(rate, 'paramwise_cfg.layer_decay_rate', 0.0, 1.0,
                           where=WHERE) == 0:
            raise ValueError(f'{WHERE}: paramwise_cfg.layer_decay_rate must '
                             'be > 0 (1.0 = no decay), got 0.')
        if self.base_wd is None:
            raise ValueError(
                f'{WHERE}: set optim_wrapper.optimizer.weight_decay (0 for '
                'none); mmpretrain\'s layer-decay constructor gives every '
                'parameter group an explicit weight decay.')

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """mmpretrain's ``add_params``; at the top (the recognizer), the
        depths come from ``module.backbone.get_layer_depth(name,
        'backbone.')`` unless the module has its own ``get_layer_depth``,
        and afterwards each group's ``lr_mult`` (from ``custom_keys``)
        multiplies its lr."""
        top = prefix == ''
        if top and get_layer_depth is None \
                and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise ValueError(
                    f'{WHERE} needs a model with get_layer_depth or a '
                    'backbone with it (the ViViT backbones have one), got '
                    f'{type(module).__name__} with backbone '
                    f'{type(backbone).__name__}.')
            get_layer_depth = partial(backbone.get_layer_depth,
                                      prefix='backbone.')
        start = len(params)
        super().add_params(params, module, prefix=prefix,
                           get_layer_depth=get_layer_depth, **kwargs)
        if top:
            for group in params[start:]:
                mult = group.pop('lr_mult', None)
                if mult is not None:
                    group['lr'] *= mult
                    group['lr_scale'] *= mult
