"""Data: the embedded synthetic motion video data set.

The generator lives in :mod:`vivit_mm.datasets.synthetic` (imported on
demand; ``python -m vivit_mm.datasets.synthetic --out DIR`` is its CLI).
"""
from .robust import CheckVideoLength, SkipBadVideosDataset, VideoReadError  # noqa: F401,E501
from .synthetic_dataset import SyntheticMotionDataset
from .transforms import ScaleJitter, VideoColorJitter

__all__ = ['SyntheticMotionDataset', 'ScaleJitter',
           'VideoColorJitter']
