"""Runner extensions that configs name: hooks (``ViViTInitHook``, the
reliability hooks and ``VideoVisualizationHook`` for ``--show-dir``),
``BF16OptimWrapper`` (bf16 mixed precision, CPU included),
``ViViTLayerDecayOptimWrapperConstructor`` (layer-wise lr decay),
``DeviceAwareDDP`` (distributed runs without CUDA) and the ``atomic_local``
file backend."""
from . import file_backends  # noqa: F401  (registers 'atomic_local')
from .hooks import (AtomicCheckpointHook, ExactResumeHook, NonFiniteLossHook,
                    PlainParamGroupsHook, SkippedVideosHook,
                    VideoVisualizationHook, ViViTInitHook,
                    WeightsOnlyCheckpointHook)
from .layer_decay import ViViTLayerDecayOptimWrapperConstructor
from .model_wrappers import DeviceAwareDDP
from .optim_wrapper import BF16OptimWrapper

__all__ = ['ViViTInitHook', 'AtomicCheckpointHook', 'ExactResumeHook',
           'NonFiniteLossHook', 'SkippedVideosHook', 'PlainParamGroupsHook',
           'WeightsOnlyCheckpointHook', 'VideoVisualizationHook',
           'BF16OptimWrapper', 'DeviceAwareDDP',
           'ViViTLayerDecayOptimWrapperConstructor']
