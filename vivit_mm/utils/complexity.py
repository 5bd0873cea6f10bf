"""FLOPs and parameter counts as the paper reports them.

The paper's "FLOPs" are multiply-accumulates (MACs, the fvcore convention).
We count with ``torch.utils.flop_counter.FlopCounterMode`` on a copy of the
model built on the ``meta`` device: there, ``scaled_dot_product_attention``
is counted (on CPU tensors torch counts nothing for it), nothing is computed
and no memory is allocated, so ViViT-H at full size is counted in seconds.
Counted: convolutions, linear layers and the attention matrix products;
not counted, as in fvcore: normalisation, activations, softmax, additions.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (works on meta modules)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module,
               input_shape: Sequence[int],
               forward: Optional[Callable[[nn.Module, torch.Tensor],
                                          torch.Tensor]] = None) -> int:
    """Multiply-accumulates of one forward pass of ``model``.

    Args:
        model (nn.Module): A model whose parameters live on the ``meta``
            device (build it under ``with torch.device('meta'):``).
        input_shape (Sequence[int]): Input shape, batch included.
        forward (callable, optional): ``forward(model, x)``; defaults to
            ``model(x)``.

    Returns:
        int: MACs (half of torch's FLOP count).
    """
    devices = {p.device.type for p in model.parameters()}
    if devices - {'meta'}:
        raise ValueError(
            'count_macs needs a model built on the meta device (torch does '
            "not count scaled_dot_product_attention on CPU tensors); build "
            "it under `with torch.device('meta'):`.")
    x = torch.empty(*input_shape, device='meta')
    forward = forward or (lambda m, inp: m(inp))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward(model, x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def backbone_input_shape(backbone: nn.Module,
                         batch_size: int = 1) -> Tuple[int, ...]:
    """``(B, C, T, H, W)`` that a ViViT backbone expects."""
    return (batch_size, backbone.in_channels, backbone.num_frames,
            *backbone.img_size)


def recognizer_complexity(model_cfg: dict) -> Tuple[int, int,
                                                    Tuple[int, ...]]:
    """MACs and parameters of one view through a recognizer config's
    backbone and head.

    Args:
        model_cfg (dict): An MMAction2 recognizer config (``model=...``)
            with a ViViT backbone; its batch blending (training only) is
            left out.

    Returns:
        tuple: ``(macs, params, input_shape)``.
    """
    from .build import build_model, without_blending
    model = build_model(without_blending(model_cfg), 'meta')
    shape = backbone_input_shape(model.backbone)

    def fwd(m, x):
        feat = m.backbone(x)
        return m.cls_head(feat) if getattr(m, 'cls_head', None) else feat

    return count_macs(model, shape, fwd), count_params(model), shape
