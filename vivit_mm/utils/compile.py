"""``torch.compile`` for testing and inference.

mmengine's ``compile`` config key compiles only ``train_step`` (at the start
of ``Runner.train()``); validation, ``tools/test.py`` and
``inference_recognizer`` run eagerly. :func:`compile_backbone` compiles a
recognizer's backbone in place for those.
"""
from typing import Optional

from mmengine.model import is_model_wrapper
from torch import nn


def compile_backbone(model: nn.Module,
                     options: Optional[dict] = None) -> nn.Module:
    """Compile ``model.backbone`` in place with ``torch.compile``.

    Uses :meth:`torch.nn.Module.compile`, so the module tree, parameter
    names and ``state_dict`` keys are unchanged and checkpoints load as
    before. The first forward pass compiles (tens of seconds for ViViT-B on
    a CPU); a new input shape compiles again.

    Args:
        model (nn.Module): A recognizer (optionally in a DDP-like wrapper)
            with a ``backbone``, or a backbone itself.
        options (dict, optional): ``torch.compile`` keyword arguments, e.g.
            ``dict(mode='max-autotune')``, ``dict(backend='eager')`` or, for
            CPU inference, ``dict(options=dict(freezing=True))``.

    Returns:
        nn.Module: The compiled module (the backbone).
    """
    if options is not None and not isinstance(options, dict):
        raise TypeError('compile options must be a dict of torch.compile '
                        f'arguments, got {type(options).__name__}.')
    if is_model_wrapper(model):
        model = model.module
    target = getattr(model, 'backbone', model)
    if not isinstance(target, nn.Module):
        raise TypeError('compile_backbone needs an nn.Module, got '
                        f'{type(target).__name__}.')
    target.compile(**dict(options or {}))
    return target


__all__ = ['compile_backbone']
