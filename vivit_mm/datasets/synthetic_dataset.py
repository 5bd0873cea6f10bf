"""``SyntheticMotionDataset``: MMAction2's ``VideoDataset`` that generates the
synthetic motion videos (:mod:`vivit_mm.datasets.synthetic`) on first use.

The generator module is imported lazily, so that
``python -m vivit_mm.datasets.synthetic`` runs it as a fresh ``__main__``.
"""
from typing import Dict, Optional

from mmaction.datasets import VideoDataset
from mmaction.registry import DATASETS
from mmengine.dist import barrier, get_rank


@DATASETS.register_module()
class SyntheticMotionDataset(VideoDataset):
    """MMAction2 ``VideoDataset`` over the synthetic motion videos, which it
    generates into ``data_root`` on first use.

    Everything else (annotation list, ``data_prefix``, pipeline) is plain
    ``VideoDataset``; once the files exist, ``type='VideoDataset'`` reads
    them the same way. In a distributed run rank 0 generates and the other
    ranks wait.

    Args:
        data_root (str): Folder of the data set (generated if it has no
            ``meta.json``).
        generate (dict, optional): Arguments of :func:`generate_dataset`
            other than ``out_dir``. Defaults to its defaults.
        **kwargs: As ``VideoDataset``.
    """

    def __init__(self, *args, data_root: str,
                 generate: Optional[Dict] = None, **kwargs) -> None:
        from .synthetic import ensure_dataset
        if not isinstance(data_root, str) or not data_root:
            raise ValueError(f'data_root must be a non-empty folder path, '
                             f'got {data_root!r}.')
        if generate is not None and not isinstance(generate, dict):
            raise TypeError(f'generate must be a dict of generate_dataset '
                            f'arguments, got {type(generate).__name__}.')
        if get_rank() == 0:
            ensure_dataset(data_root, **dict(generate or {}))
        barrier()
        super().__init__(*args, data_root=data_root, **kwargs)
