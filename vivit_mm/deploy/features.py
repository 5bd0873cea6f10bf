"""Video features from a ViViT recognizer: the pooled clip feature or the
final token grid, averaged over the config's test views.

For each video the config's ``test_pipeline`` (e.g. 4 clips x 3 crops) gives
``V`` views; the data preprocessor normalises them, and

* clip features (:func:`clip_feature`): the backbone's pooled ``[D]``
  output for every view (MMAction2's
  ``Recognizer3D.extract_feat(inputs, test_mode=True)``, which honours
  ``test_cfg.max_testing_views``), averaged over the views. This is the
  vector the head classifies: the CLS output (``pooling='token'``) or the
  mean of the final-normed tokens (``'gap'``); for Model 2 the temporal
  encoder's output (the mean of the per-frame vectors with
  ``num_temporal_layers=0``).
* token features (:func:`token_features`, :func:`token_feature`):
  ``[n_t, n_h, n_w, D]`` per view, averaged over the views, with
  ``(n_t, n_h, n_w) = (num_frames / tubelet_size, H / p, W / p)``:

  - Models 1, 3, 4: the encoder's final tokens after its final norm,
    without the CLS token, arranged on the (time-major) token grid;
  - Model 2: the *spatial* encoder's final tokens (after its final norm,
    without its CLS token) of each temporal index, i.e. index ``t`` is the
    image ViT's output for the ``t``-th frame (tubelet); the temporal
    encoder works on one vector per index and has no spatial tokens, so it
    is not part of these features.

The ``.npz`` files of :func:`save_features` hold ``features``
(``[num_videos, D]`` or ``[num_videos, n_t, n_h, n_w, D]``, float32) and
``names``; a ``.npy`` file holds one video's array.
"""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn


def token_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The final token features of a ViViT backbone: ``[B, C, T, H, W]`` ->
    ``[B, n_t, n_h, n_w, D]`` (see the module docstring for what they are
    per variant): its ``'featmap'`` output of the image encoder's last
    block (``num_layers - 1``; Model 2's temporal blocks come after it and
    do not run)."""
    from ..models.backbones.base import BaseViViT
    if not isinstance(backbone, BaseViViT):
        raise ValueError('token features need a ViViT backbone, got '
                         f'{type(backbone).__name__}.')
    featmap = backbone.forward_outputs(
        x, out_type='featmap', out_indices=backbone.num_layers - 1)
    return featmap.permute(0, 2, 3, 4, 1)  # [B, n_t, n_h, n_w, D]


def load_views(model: nn.Module, filename: str,
               pipeline=None) -> torch.Tensor:
    """The test views of one video, normalised by the model's data
    preprocessor: ``[V, C, T, H, W]``.

    Args:
        model: A recognizer with ``cfg`` (``init_recognizer``'s).
        filename (str): The video file.
        pipeline: A composed test pipeline; defaults to the config's
            ``test_pipeline`` (see :func:`compose_test_pipeline`).
    """
    from mmengine.dataset import pseudo_collate
    pipeline = pipeline or compose_test_pipeline(model.cfg)
    data = pipeline(dict(filename=os.fspath(filename), label=-1,
                         start_index=0, modality='RGB'))
    with torch.no_grad():
        inputs = model.data_preprocessor(pseudo_collate([data]),
                                         False)['inputs']
    return inputs[0]  # [V, C, T, H, W]


def compose_test_pipeline(cfg):
    """The config's ``test_pipeline``, composed under its default scope."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return Compose(cfg.test_pipeline)


def _view_chunks(model: nn.Module, views: torch.Tensor):
    """``views`` in chunks of the config's ``test_cfg.max_testing_views``
    (all at once without it)."""
    test_cfg = getattr(model, 'test_cfg', None) or {}
    size = test_cfg.get('max_testing_views', None) or views.shape[0]
    return views.split(size)


def clip_feature(model: nn.Module, views: torch.Tensor) -> torch.Tensor:
    """The backbone's pooled feature averaged over the views: ``[V, C, T,
    H, W]`` -> ``[D]`` (via ``model.extract_feat(..., test_mode=True)``)."""
    with torch.no_grad():
        feats, _ = model.extract_feat(views[None], test_mode=True)
    return feats.float().mean(dim=0)


def token_feature(model: nn.Module, views: torch.Tensor) -> torch.Tensor:
    """The token features averaged over the views: ``[V, C, T, H, W]`` ->
    ``[n_t, n_h, n_w, D]`` (:func:`token_features`)."""
    with torch.no_grad():
        feats = [token_features(model.backbone, chunk).float()
                 for chunk in _view_chunks(model, views)]
    return torch.cat(feats).mean(dim=0)


def read_video_list(list_file: str,
                    data_prefix: Optional[str] = None
                    ) -> List[Tuple[str, str]]:
    """``(path, name)`` of each video of an MMAction2 list file (lines
    ``relative/path.mp4 label``; blank lines skipped): ``name`` as written in
    the list, ``path`` joined to ``data_prefix`` (default: the list's
    folder)."""
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f'Video list {list_file!r} does not exist.')
    if data_prefix is None:
        data_prefix = os.path.dirname(os.path.abspath(list_file))
    videos = []
    with open(list_file, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(
                    f'{list_file}:{number}: expected "relative/path.mp4 '
                    f'label", got {line.strip()!r}.')
            videos.append((os.path.join(data_prefix, parts[0]), parts[0]))
    if not videos:
        raise ValueError(f'Video list {list_file!r} names no video.')
    return videos


def extract_features(model: nn.Module,
                     videos: Sequence[Tuple[str, str]],
                     tokens: bool = False) -> np.ndarray:
    """Features of each ``(path, name)`` video: ``[num_videos, D]``
    (:func:`clip_feature`) or ``[num_videos, n_t, n_h, n_w, D]`` with
    ``tokens=True`` (:func:`token_feature`), float32."""
    pipeline = compose_test_pipeline(model.cfg)
    feature = token_feature if tokens else clip_feature
    out = []
    for path, _ in videos:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Video {path!r} does not exist.')
        out.append(feature(model, load_views(model, path, pipeline)))
    return torch.stack(out).cpu().numpy().astype(np.float32)


def save_features(path: str, features: np.ndarray,
                  names: Sequence[str]) -> None:
    """``.npz``: arrays ``features`` and ``names``; ``.npy``: the one
    video's features (``features[0]``) only."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if path.endswith('.npy'):
        if len(features) != 1:
            raise ValueError(f'{path}: a .npy file holds one video, got '
                             f'{len(features)}; use .npz.')
        np.save(path, features[0])
    elif path.endswith('.npz'):
        np.savez(path, features=features, names=np.array(list(names)))
    else:
        raise ValueError(f'--out must end in .npy or .npz, got {path!r}.')


__all__ = ['token_features', 'load_views', 'compose_test_pipeline',
           'clip_feature', 'token_feature', 'read_video_list', 'extract_features',
           'save_features']
