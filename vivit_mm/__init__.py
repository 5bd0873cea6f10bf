"""vivit_mm: ViViT (Arnab et al., ICCV 2021) as an MMAction2 plugin.

``import vivit_mm`` registers the modules configs name (backbones
``ViViTM1``-``ViViTM4``, ``ViViTHead``, transforms, data set wrappers, the
sampler, hooks, optimizer and model wrappers, the ``atomic_local`` file
backend) into MMAction2's and mmengine's registries, so a config needs only
``custom_imports = dict(imports=['vivit_mm'])``. It changes nothing else in
torch, mmengine or MMAction2 but one documented entry, the weights-only
allow-list of data-only types (:mod:`vivit_mm.compat`).
"""
import warnings

from .compat import check_host_versions, register_safe_globals

check_host_versions()

with warnings.catch_warnings():
    # mmcv-lite has no compiled ops; mmcv warns about that when MMAction2's
    # models are first imported, although no op of mmcv's is used here.
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    from .models import *  # noqa: E402,F401,F403

from . import datasets, engine  # noqa: E402,F401
from .inflation import InflationReport, inflate_image_weights  # noqa: E402,F401,E501
from .version import __version__  # noqa: E402,F401

# Runner checkpoints load with weights_only=True (see compat.py).
register_safe_globals()
