"""Clip-level data transforms for the paper's training recipe, registered in
MMAction2's ``TRANSFORMS``.

Everything else the configs use is MMAction2's own (``DecordInit``,
``SampleFrames``, ``Resize``, ``RandomCrop``, ``Flip``, ``ThreeCrop`` ...);
RandAugment is torchvision's, wrapped by MMAction2's ``TorchVisionWrapper``,
which draws the operations once per clip and so applies the same ones to
every frame.
"""
from typing import Dict, Tuple

import cv2
import mmcv
import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ..utils import checks

_INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


@TRANSFORMS.register_module()
class ScaleJitter(BaseTransform):
    """Scale jitter of the ViViT recipe: resize every frame of a clip by
    factors drawn once per clip, independently for height and width.

    This is the official pipeline's ``scale_jitter_augm`` (DMVR, used by
    scenic with factors in [0.9, 1.33] after resizing the short side to 256,
    followed by a random crop). The two factors are drawn independently, so
    the aspect ratio changes too; MMAction2's ``RandomResizedCrop`` and
    ``MultiScaleCrop`` parameterise crops by area/aspect or by a fixed list
    of sizes and so give a different distribution.

    Required keys: ``imgs``, ``img_shape``. Modified keys: ``imgs``,
    ``img_shape``, ``scale_factor`` (if present).

    Args:
        scale_range (tuple[float, float]): Range of the uniform factors.
            Defaults to (0.9, 1.33).
        prob (float): Probability of jittering a clip. Defaults to 1.0.
        interpolation (str): mmcv interpolation. Defaults to 'bilinear'.
    """

    def __init__(self,
                 scale_range: Tuple[float, float] = (0.9, 1.33),
                 prob: float = 1.0,
                 interpolation: str = 'bilinear') -> None:
        try:
            self.scale_range = checks.number_pair(scale_range, 'scale_range',
                                                  low=0.0)
        except ValueError:
            self.scale_range = (0.0, 0.0)  # rejected below, 0 excluded
        if self.scale_range[0] == 0:
            raise ValueError('scale_range must be (low, high) with 0 < low '
                             f'<= high, got {scale_range!r}.')
        self.prob = checks.probability(prob, 'prob')
        self.interpolation = checks.one_of(interpolation, 'interpolation',
                                           _INTERPOLATIONS)

    def transform(self, results: Dict) -> Dict:
        """Resize ``results['imgs']`` (a list of HxWxC frames) in place."""
        if np.random.rand() >= self.prob:
            return results
        h_scale, w_scale = np.random.uniform(*self.scale_range, size=2)
        h, w = results['img_shape']
        new_h, new_w = max(1, int(h * h_scale)), max(1, int(w * w_scale))
        results['imgs'] = [
            mmcv.imresize(img, (new_w, new_h),
                          interpolation=self.interpolation)
            for img in results['imgs']
        ]
        results['img_shape'] = (new_h, new_w)
        if 'scale_factor' in results:
            results['scale_factor'] = results['scale_factor'] * np.array(
                [new_w / w, new_h / h], dtype=np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale_range={self.scale_range}, '
                f'prob={self.prob}, interpolation={self.interpolation})')


@TRANSFORMS.register_module()
class VideoColorJitter(BaseTransform):
    """Colour augmentation of the ViViT recipe, one draw per clip.

    The official pipeline's ``color_default_augm`` (DMVR, used by scenic
    with ``prob_color_augment=0.8``): with probability ``prob``, on frames in
    [0, 1], in this order: add a brightness delta, scale the HSV saturation,
    scale the contrast around each frame's per-channel mean, rotate the hue,
    then clip to [0, 1]. Every frame of a clip gets the same factors.
    Optionally (``gray_prob``, scenic's ``prob_color_drop``) the clip is
    turned grey. MMAction2's own ``ColorJitter`` always applies, uses
    multiplicative brightness and, under NumPy 2, fails on negative hue
    offsets (uint8 overflow), hence this transform.

    Required keys: ``imgs`` (uint8 HxWx3 RGB frames). Modified: ``imgs``.

    Args:
        prob (float): Probability of colour-augmenting a clip. Defaults to
            0.8.
        brightness (float): Max absolute brightness delta, in [0, 1] units.
            Defaults to 32 / 255.
        saturation (tuple[float, float]): Range of the saturation factor.
            Defaults to (0.6, 1.4).
        contrast (tuple[float, float]): Range of the contrast factor.
            Defaults to (0.6, 1.4).
        hue (float): Max absolute hue rotation as a fraction of the colour
            circle, in [0, 0.5]. Defaults to 0.2.
        gray_prob (float): Probability of converting the clip to grey
            (after the colour augmentation). Defaults to 0.
    """

    def __init__(self,
                 prob: float = 0.8,
                 brightness: float = 32. / 255.,
                 saturation: Tuple[float, float] = (0.6, 1.4),
                 contrast: Tuple[float, float] = (0.6, 1.4),
                 hue: float = 0.2,
                 gray_prob: float = 0.0) -> None:
        self.prob = checks.probability(prob, 'prob')
        self.brightness = checks.in_range(brightness, 'brightness', 0, 1)
        self.saturation = checks.number_pair(saturation, 'saturation', 0.0)
        self.contrast = checks.number_pair(contrast, 'contrast', 0.0)
        self.hue = checks.in_range(hue, 'hue', 0, 0.5)
        self.gray_prob = checks.probability(gray_prob, 'gray_prob')

    def _jitter(self, img: np.ndarray, delta: float, sat: float,
                con: float, hue: float) -> np.ndarray:
        """Apply the four operations to one float32 [0, 1] RGB frame."""
        img = img + delta
        hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)
        hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 1)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        mean = img.mean(axis=(0, 1), keepdims=True)
        img = (img - mean) * con + mean
        hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + hue * 360.0, 360.0)
        return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1)

    def transform(self, results: Dict) -> Dict:
        """Colour-augment ``results['imgs']`` with one draw per clip."""
        imgs = results['imgs']
        if np.random.rand() < self.prob:
            delta = np.random.uniform(-self.brightness, self.brightness)
            sat = np.random.uniform(*self.saturation)
            con = np.random.uniform(*self.contrast)
            hue = np.random.uniform(-self.hue, self.hue)
            imgs = [
                np.round(self._jitter(
                    img.astype(np.float32) / 255., delta, sat, con, hue) *
                         255.).astype(np.uint8) for img in imgs
            ]
        if np.random.rand() < self.gray_prob:
            imgs = [
                np.repeat(
                    cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3,
                    axis=-1) for img in imgs
            ]
        results['imgs'] = imgs
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'brightness={self.brightness:.4f}, '
                f'saturation={self.saturation}, contrast={self.contrast}, '
                f'hue={self.hue}, gray_prob={self.gray_prob})')
