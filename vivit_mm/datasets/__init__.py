"""Data: transforms, data set wrappers and the sampler that configs name,
and the embedded synthetic motion video data set.

The generator lives in :mod:`vivit_mm.datasets.synthetic` (imported on
demand; ``python -m vivit_mm.datasets.synthetic --out DIR`` is its CLI).
"""
from .decoders import (PyAVIndexDecode, PyAVIndexInit, TorchCodecDecode,
                       TorchCodecInit)
from .samplers import ResumableSampler
from .synthetic_dataset import SyntheticMotionDataset
from .transforms import ScaleJitter, VideoColorJitter
from .video_errors import CheckVideoLength, VideoReadError, VideoReadGuard
from .wrappers import ReproducibleDataset, SkipBadVideosDataset

__all__ = ['SyntheticMotionDataset', 'ScaleJitter', 'VideoColorJitter',
           'VideoReadGuard', 'VideoReadError', 'CheckVideoLength',
           'SkipBadVideosDataset', 'ReproducibleDataset', 'ResumableSampler',
           'PyAVIndexInit', 'PyAVIndexDecode', 'TorchCodecInit',
           'TorchCodecDecode']
