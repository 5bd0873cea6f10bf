"""vivit_mm: ViViT (Arnab et al., ICCV 2021) as an MMAction2 plugin.

``import vivit_mm`` registers the backbones ``ViViTM1``-``ViViTM4`` and the
``ViViTHead`` into MMAction2's ``MODELS`` registry, so a config needs only
``custom_imports = dict(imports=['vivit_mm'])``.
"""
import warnings

# mmcv-lite has no compiled ops; mmcv warns about that on import although no
# op of mmcv's is used here.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from .models import *  # noqa: E402,F401,F403
from . import datasets  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
from .utils.checkpoint import register_safe_globals  # noqa: E402

# Runner checkpoints load with weights_only=True (see utils/checkpoint.py).
register_safe_globals()
from .inflation import InflationReport, inflate_image_weights  # noqa: E402,F401,E501
from . import engine  # noqa: E402,F401  (registers ViViTInitHook)
