"""Heat-map overlays of token maps on the frames a model saw: a PNG grid and
an mp4 (OpenCV only; no plotting library needed)."""
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def upsample(token_map: torch.Tensor, num_frames: int,
             size: Tuple[int, int]) -> torch.Tensor:
    """``[n_t, n_h, n_w]`` -> ``[T, H, W]``: each temporal index covers
    ``T / n_t`` consecutive frames (its tubelet, or its frame for uniform
    frame sampling); space is interpolated bilinearly."""
    n_t = token_map.shape[0]
    if num_frames % n_t != 0:
        raise ValueError(f'{num_frames} frames cannot be split evenly over '
                         f'{n_t} temporal token indices.')
    m = F.interpolate(token_map[:, None].double(), size=tuple(size),
                      mode='bilinear', align_corners=False)[:, 0]
    return m.repeat_interleave(num_frames // n_t, dim=0).clamp(min=0)


def normalise(heat: torch.Tensor) -> np.ndarray:
    """Min-max over the whole clip (not per frame, so that the frames'
    relative weight stays visible), as float32 in [0, 1]."""
    heat = heat.double()
    lo, hi = heat.min(), heat.max()
    return ((heat - lo) / (hi - lo).clamp(min=1e-12)).float().numpy()


def overlay(frames: np.ndarray, heat: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
    """Blend a JET heat map over ``frames``: ``[T, H, W, 3]`` uint8 RGB and
    ``[T, H, W]`` in [0, 1] -> ``[T, H, W, 3]`` uint8 RGB."""
    import cv2
    out = np.empty_like(frames)
    for i, (f, h) in enumerate(zip(frames, heat)):
        colour = cv2.applyColorMap(np.uint8(np.round(h * 255)),
                                   cv2.COLORMAP_JET)[..., ::-1]  # BGR->RGB
        out[i] = np.uint8(np.round((1 - alpha) * f + alpha * colour))
    return out


def enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``[T, H, W, 3]`` by ``scale``."""
    if scale == 1:
        return frames
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def _label(text: str, width: int, height: int = 18) -> np.ndarray:
    import cv2
    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def grid_image(rows: Sequence[Tuple[str, np.ndarray]],
               columns: Sequence[int], title: str = '') -> np.ndarray:
    """One row per ``(label, [T, H, W, 3])`` clip, one column per frame
    index in ``columns``, each row under its label, the title on top:
    ``[H', W', 3]`` uint8 RGB."""
    gap = 2
    blocks: List[np.ndarray] = []
    for label, clip in rows:
        tiles = [clip[i] for i in columns]
        h = tiles[0].shape[0]
        sep = np.full((h, gap, 3), 255, np.uint8)
        line = np.concatenate(
            [x for t in tiles for x in (t, sep)][:-1], axis=1)
        blocks += [_label(label, line.shape[1]), line]
    width = blocks[0].shape[1]
    if title:
        blocks.insert(0, _label(title, width, 22))
    return np.concatenate(blocks, axis=0)


def write_png(path: str, image: np.ndarray) -> None:
    """Write an RGB image; a clear error if OpenCV cannot."""
    import cv2
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f'Could not write {path!r}: is the folder writable '
                      'and the extension .png?')


def write_mp4(path: str, clips: Sequence[np.ndarray], fps: float) -> None:
    """Write clips ``[T, H, W, 3]`` (RGB, same ``T`` and ``H``) side by side
    as an mp4 (MPEG-4 part 2, ``mp4v``)."""
    import cv2
    if osp.splitext(path)[1].lower() != '.mp4':
        raise ValueError(f'{path!r}: the video is written as .mp4.')
    T, H = clips[0].shape[:2]
    sep = np.full((T, H, 2, 3), 255, np.uint8)  # a 2 px white gap
    parts = [x for c in clips for x in (c, sep)][:-1]
    frames = np.concatenate(parts, axis=2)
    # Even sizes: what MPEG-4 encoders and most players expect.
    frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2),
                             (0, frames.shape[2] % 2), (0, 0)),
                    constant_values=255)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (w, h))
    if not writer.isOpened():
        raise OSError(f'OpenCV could not open {path!r} for writing.')
    try:
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
    finally:
        writer.release()
