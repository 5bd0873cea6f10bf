from .base import BaseViViT
from .vivit_m1 import ViViTM1
from .vivit_m2 import ViViTM2
from .vivit_m3 import ViViTM3
from .vivit_m4 import ViViTM4

__all__ = ['BaseViViT', 'ViViTM1', 'ViViTM2', 'ViViTM3', 'ViViTM4']
