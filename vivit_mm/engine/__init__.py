"""Runner extensions that configs name: hooks (``ViViTInitHook``, the
reliability hooks and ``VideoVisualizationHook`` for ``--show-dir``),
``BF16OptimWrapper`` (bf16 mixed precision, CPU included),
``ViViTLayerDecayOptimWrapperConstructor`` (layer-wise lr decay),
``DeviceAwareDDP`` (distributed runs without CUDA) and the ``atomic_local``
file backend."""
from . import file_backends  # noqa: F401  (registers 'atomic_local')
from .hooks import (AtomicCheckpointHook, ExactResumeHook, LoadCheckHook,
                    NonFiniteLossHook, PlainParamGroupsHook, SkippedVideosHook,
                    VideoVisualizationHook, ViViTInitHook,
                    WeightsOnlyCheckpointHook)
from .layer_decay import ViViTLayerDecayOptimWrapperConstructor
from .model_wrappers import DeviceAwareDDP
from .optim_wrapper import BF16OptimWrapper
from .streaming_dump import StreamingDumpResults, read_parts

__all__ = ['ViViTInitHook', 'AtomicCheckpointHook', 'ExactResumeHook',
           'NonFiniteLossHook', 'SkippedVideosHook', 'PlainParamGroupsHook',
           'WeightsOnlyCheckpointHook', 'VideoVisualizationHook',
           'LoadCheckHook', 'BF16OptimWrapper', 'DeviceAwareDDP',
           'ViViTLayerDecayOptimWrapperConstructor', 'StreamingDumpResults',
           'read_parts']
