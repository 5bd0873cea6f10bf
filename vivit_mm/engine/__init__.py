"""Runner extensions: ``ViViTInitHook`` (start training from an image ViT),
the reliability hooks, ``PlainParamGroupsHook`` (torch.compile) and
``BF16OptimWrapper`` (bf16 mixed precision, CPU included)."""
from .hooks import ViViTInitHook
from .optim_wrapper import BF16OptimWrapper

__all__ = ['ViViTInitHook', 'BF16OptimWrapper']
