from typing import Optional

import torch
from mmaction.models.heads import BaseHead
from mmaction.registry import MODELS
from mmengine.model.weight_init import trunc_normal_
from torch import nn

from ..utils.load_checks import register_fit_check


@MODELS.register_module()
class ViViTHead(BaseHead):
    """Classification head for ViViT backbones: optional dropout, then one
    linear layer on the pooled ``[B, D]`` feature.

    Loss (with ``label_smooth_eps``), top-k accuracy and multi-view
    averaging (``average_clips``) come from MMAction2's ``BaseHead``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Feature width D of the backbone.
        loss_cls (dict): Classification loss. Defaults to cross-entropy.
        dropout_ratio (float): Dropout before the classifier. Defaults to 0.
        init_std (float): The classifier's weight is drawn from a truncated
            normal with this std and its bias set to 0. ``init_std=0`` makes
            the whole classifier zero, as the official code initialises it.
            Defaults to 0.02.
        **kwargs: ``BaseHead`` arguments (``label_smooth_eps``, ``topk``,
            ``average_clips``, ``multi_class``, ``init_cfg``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss_cls: dict = dict(type='CrossEntropyLoss'),
                 dropout_ratio: float = 0.0,
                 init_std: float = 0.02,
                 **kwargs) -> None:
        for name, value in (('num_classes', num_classes),
                            ('in_channels', in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}.')
        # BaseHead checks this only when it first averages (at validation).
        average_clips = kwargs.get('average_clips', None)
        if average_clips not in ('score', 'prob', None):
            raise ValueError("average_clips must be 'score', 'prob' or None, "
                             f'got {average_clips!r}.')
        super().__init__(num_classes, in_channels, loss_cls, **kwargs)
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(
                f'dropout_ratio must be in [0, 1), got {dropout_ratio!r}.')
        if init_std < 0:
            raise ValueError(f'init_std must be >= 0, got {init_std!r}.')
        self.dropout_ratio = dropout_ratio
        self.init_std = init_std
        self.dropout: Optional[nn.Module] = (nn.Dropout(dropout_ratio)
                                             if dropout_ratio > 0 else None)
        self.fc_cls = nn.Linear(in_channels, num_classes)
        register_fit_check(self, 'head')  # a misfit is refused unless training

    def init_weights(self) -> None:
        """Truncated-normal weight (std ``init_std``) and zero bias, or all
        zeros when ``init_std == 0``."""
        if self.init_std > 0:
            trunc_normal_(self.fc_cls.weight, std=self.init_std)
        else:
            nn.init.zeros_(self.fc_cls.weight)
        nn.init.zeros_(self.fc_cls.bias)
        self._is_init = True  # training: load_from may bring other classes

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``[B, D]`` pooled features -> ``[B, num_classes]`` scores (float32
        for a half-precision or autocast forward)."""
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'ViViTHead expects pooled features [B, {self.in_channels}], '
                f'got {list(x.shape)}; set in_channels to the backbone '
                'embed_dims.')
        if self.dropout is not None:
            x = self.dropout(x)
        scores = self.fc_cls(x)
        # float32 scores also under bf16/fp16 autocast: the loss is taken in
        # float32, and BaseHead's top-k accuracy converts the scores to
        # NumPy, which has no bfloat16. float64 models keep float64.
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        return scores
