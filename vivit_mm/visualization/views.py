"""The views a config's pipeline makes of one video, as frames to look at
and as model inputs, and the same views of per-frame masks (to measure how
much of a map falls on an object)."""
import os
from typing import Dict, List, Tuple

import numpy as np
import torch

from .attention_maps import object_mass_ratio, recognizer_maps
from .overlay import upsample


def _pipeline(cfg, key: str) -> list:
    if not cfg.get(key):
        raise ValueError(f'The config has no {key}; choose a pipeline it '
                         'defines (test_pipeline, val_pipeline).')
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return list(cfg[key])


def _read_end(steps: list) -> int:
    """Index after the pipeline's reading part (``VideoReadGuard`` or the
    last ``*Decode`` transform): what follows works on decoded frames."""
    ends = [i for i, s in enumerate(steps)
            if s.get('type') == 'VideoReadGuard'
            or str(s.get('type', '')).endswith('Decode')]
    if not ends:
        raise ValueError('The pipeline has no decoding step (e.g. '
                         'DecordDecode); cannot separate reading from the '
                         'frame transforms.')
    return ends[-1] + 1


def video_views(model, video: str,
                key: str = 'test_pipeline') -> Tuple[np.ndarray, torch.Tensor]:
    """All views of ``video``: the frames as the pipeline made them
    ``[V, T, H, W, 3]`` uint8, and the data preprocessor's normalised
    inputs ``[V, C, T, H, W]``."""
    from mmengine.dataset import Compose, pseudo_collate
    data = Compose(_pipeline(model.cfg, key))(dict(
        filename=os.fspath(video), label=-1, start_index=0, modality='RGB'))
    raw = data['inputs']
    if raw.dim() != 5:
        raise ValueError(f'The {key} makes inputs of shape '
                         f'{list(raw.shape)}; ViViT needs FormatShape('
                         "input_format='NCTHW').")
    with torch.no_grad():
        x = model.data_preprocessor(pseudo_collate([data]),
                                    False)['inputs'][0]
    frames = raw.permute(0, 2, 3, 4, 1).float().clamp(0, 255).round()
    return frames.to(torch.uint8).numpy(), x


def mask_views(model, video: str, masks: np.ndarray,
               key: str = 'test_pipeline') -> np.ndarray:
    """The views of ``masks`` (``[num_frames, H, W]`` bool, one per frame of
    ``video``) that the pipeline makes of ``video``: the same sampled
    frames, resizes and crops. Returns ``[V, T, H', W']`` bool."""
    from mmengine.dataset import Compose
    steps = _pipeline(model.cfg, key)
    end = _read_end(steps)
    results = Compose(steps[:end])(dict(
        filename=os.fspath(video), label=-1, start_index=0, modality='RGB'))
    inds = np.asarray(results['frame_inds']).reshape(-1)
    if masks.shape[1:] != tuple(results['original_shape']):
        raise ValueError(f'masks of {masks.shape[1:]} pixels for frames of '
                         f'{tuple(results["original_shape"])}.')
    inds = np.mod(inds - results.get('start_index', 0), masks.shape[0])
    images = np.uint8(masks[inds]) * 255
    results['imgs'] = [np.repeat(m[..., None], 3, axis=2) for m in images]
    inputs = Compose(steps[end:])(results)['inputs']  # [V, C, T, H, W]
    return (inputs[:, 0] > 127).numpy()


def object_mass_ratios(model, video: str, masks: np.ndarray,
                       key: str = 'test_pipeline') -> Dict[str, List[float]]:
    """:func:`object_mass_ratio` of every map of every view of ``video``,
    by map name (``rollout``, ``cls_attention`` for CLS-pooled models)."""
    frames, x = video_views(model, video, key)
    views = mask_views(model, video, masks, key)
    maps, _ = recognizer_maps(model, x)
    out: Dict[str, List[float]] = {}
    T, H, W = frames.shape[1:4]
    for name in ('rollout', 'cls_attention'):
        m = getattr(maps, name)
        if m is None:
            continue
        out[name] = [object_mass_ratio(upsample(m[v], T, (H, W)),
                                       torch.from_numpy(views[v]))
                     for v in range(m.shape[0])]
    return out
