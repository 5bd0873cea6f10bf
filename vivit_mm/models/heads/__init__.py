from .vivit_head import ViViTHead

__all__ = ['ViViTHead']
