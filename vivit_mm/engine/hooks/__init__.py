from .vivit_init_hook import ViViTInitHook

__all__ = ['ViViTInitHook']
