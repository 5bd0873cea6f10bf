"""Runner extensions: ``ViViTInitHook`` (start training from an image ViT)."""
from .hooks import ViViTInitHook

__all__ = ['ViViTInitHook']
