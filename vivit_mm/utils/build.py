"""Building MMAction2 models from config dicts, on any device."""
import contextlib
import copy
from typing import Dict, Optional, Tuple, Union

import torch
from torch import nn


def build_model(cfg: dict,
                device: Optional[Union[str, torch.device]] = None
                ) -> nn.Module:
    """``MODELS.build(cfg)`` under MMAction2's default scope.

    Args:
        cfg (dict): A model config (recognizer, backbone, head ...); it is
            not modified.
        device (str | torch.device, optional): Build the parameters there;
            ``'meta'`` allocates nothing and computes nothing (shapes,
            FLOP counts).
    """
    from mmaction.registry import MODELS
    from mmengine.registry import DefaultScope
    place = torch.device(device) if device is not None \
        else contextlib.nullcontext()
    with place, DefaultScope.overwrite_default_scope('mmaction'):
        return MODELS.build(copy.deepcopy(dict(cfg)))


def parameter_shapes(cfg: dict, prefixes: Tuple[str, ...] = ()
                     ) -> Dict[str, Tuple[int, ...]]:
    """Names and shapes of the state dict of the model ``cfg`` describes
    (built on the ``meta`` device), optionally only keys starting with one
    of ``prefixes``."""
    model = build_model(cfg, 'meta')
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not prefixes or k.startswith(prefixes)}


def without_blending(cfg: dict) -> dict:
    """A copy of a recognizer config whose data preprocessor blends no
    batches (mixup, cutmix).

    Blending mixes the clips and labels of a training batch; it changes no
    shape the network sees, and its random state cannot be built on the
    ``meta`` device, so FLOP counts and memory plans build the model
    without it.
    """
    cfg = copy.deepcopy(dict(cfg))
    pre = cfg.get('data_preprocessor')
    if isinstance(pre, dict) and pre.get('blending') is not None:
        cfg['data_preprocessor'] = dict(pre, blending=None)
    return cfg


__all__ = ['build_model', 'parameter_shapes', 'without_blending']
