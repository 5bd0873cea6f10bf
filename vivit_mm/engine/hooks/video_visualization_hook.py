"""``tools/test.py --show-dir`` for 3D recognizers: draw each tested
sample's frames with its prediction through MMAction2's
``ActionVisualizer``."""
import math
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmengine.visualization import Visualizer

from ...utils import checks


def sample_frames(inputs: torch.Tensor,
                  max_views: Optional[int] = 1) -> np.ndarray:
    """The frames of one packed sample, ``[N, H, W, C]`` uint8.

    ``inputs`` is what ``PackActionInputs`` made of the test pipeline's
    views: ``[V, C, T, H, W]`` (``FormatShape('NCTHW')``) or ``[N, C, H, W]``
    (``'NCHW'``, 2D recognizers). The first ``max_views`` views (all of them
    with ``None``) are laid out one after the other in time.
    """
    if inputs.dim() == 5:  # [V, C, T, H, W]
        views = inputs if max_views is None else inputs[:max_views]
        frames = views.permute(0, 2, 3, 4, 1).flatten(0, 1)  # [V*T, H, W, C]
    elif inputs.dim() == 4:  # [N, C, H, W]
        frames = inputs.permute(0, 2, 3, 1)
    else:
        raise ValueError('VideoVisualizationHook draws inputs of shape '
                         '[V, C, T, H, W] (NCTHW) or [N, C, H, W] (NCHW), got '
                         f'{tuple(inputs.shape)}.')
    return frames.detach().cpu().numpy().astype(np.uint8)


@HOOKS.register_module()
class VideoVisualizationHook(Hook):
    """Draw the frames of every ``interval``-th validation/test sample with
    its ground truth and predicted class through the runner's visualizer
    (``ActionVisualizer.add_datasample``).

    MMAction2 1.1's ``VisualizationHook`` cannot do this for 3D recognizers:
    it permutes each packed input as ``[C, T, H, W]``, but ``FormatShape
    ('NCTHW')`` packs ``[views, C, T, H, W]`` (every shipped config), and it
    passes ``show=`` to ``add_datasample``, which has no such argument. This
    hook takes the same arguments plus ``max_views``.

    The frames are those the model saw: after the test pipeline's resize and
    crop, before normalisation. With ``out_dir`` they are written as
    ``{out_dir}/{name}_{step}/frames_{step}/{i}.png`` (``out_type='img'``,
    MMAction2's layout; ``'gif'``/``'video'`` need moviepy), else through
    the visualizer's backends. ``name`` is the video's file name when the
    data sample or (one process, unshuffled loader) the data set says it,
    else the sample index.

    Args:
        enable (bool): Draw at all. Defaults to False.
        interval (int): Draw every ``interval``-th sample. Defaults to 1.
        show (bool): Also show the frames in a window. Defaults to False.
        out_dir (str, optional): Where to write. Defaults to None.
        max_views (int, optional): How many test views to draw, one after
            the other (views are crop-major: with ``ThreeCrop`` the first
            ``num_clips`` views are the clips of the first crop); None for
            all. Defaults to 1.
        wait_time (float): Seconds to show the last frame. Defaults to 0.1.
        **kwargs: Other arguments of ``ActionVisualizer.add_datasample``
            (``draw_gt``, ``draw_score``, ``out_type``, ``fps`` ...).
    """

    priority = 'NORMAL'

    def __init__(self,
                 enable: bool = False,
                 interval: int = 1,
                 show: bool = False,
                 out_dir: Optional[str] = None,
                 max_views: Optional[int] = 1,
                 wait_time: float = 0.1,
                 **kwargs) -> None:
        name = 'VideoVisualizationHook'
        self.enable = bool(enable)
        self.interval = checks.positive_int(interval, 'interval', name)
        if max_views is not None:
            max_views = checks.positive_int(max_views, 'max_views', name)
        self.max_views = max_views
        self.show = bool(show)
        self.out_dir = out_dir
        for bad in ('video', 'data_sample', 'show_frames', 'out_path',
                    'step', 'name'):
            if bad in kwargs:
                raise ValueError(f'{name}: {bad!r} is set by the hook.')
        self.draw_args = dict(kwargs, show_frames=self.show,
                              wait_time=wait_time)

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence) -> None:
        """Draw the batch's samples (step: the epoch, or the iteration)."""
        step = (runner.epoch if isinstance(runner.train_loop,
                                           EpochBasedTrainLoop)
                else runner.iter)
        self._draw(runner, runner.val_dataloader, batch_idx, data_batch,
                   outputs, step)

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence) -> None:
        """Draw the batch's samples (step 0)."""
        self._draw(runner, runner.test_dataloader, batch_idx, data_batch,
                   outputs, 0)

    def _draw(self, runner, loader, batch_idx, data_batch, outputs,
              step) -> None:
        if not self.enable:
            return
        visualizer = Visualizer.get_current_instance()
        start = len(outputs) * batch_idx
        first = math.ceil(start / self.interval) * self.interval
        for sample_id in range(first, start + len(outputs), self.interval):
            i = sample_id - start
            frames = sample_frames(data_batch['inputs'][i], self.max_views)
            name = self._name(outputs[i], loader, sample_id)
            args = dict(self.draw_args)
            if self.out_dir is not None:
                args['out_path'] = osp.join(self.out_dir, f'{name}_{step}')
            visualizer.add_datasample(
                name, frames, data_sample=outputs[i], step=step, **args)

    @staticmethod
    def _name(data_sample, loader, sample_id: int) -> str:
        """The video's file name, else the sample index."""
        for key in ('filename', 'frame_dir'):
            if key in data_sample:
                return osp.basename(str(data_sample.get(key)))
        dataset = getattr(loader, 'dataset', None)
        sampler = getattr(loader, 'sampler', None)
        if (get_world_size() == 1 and hasattr(dataset, 'get_data_info')
                and not getattr(sampler, 'shuffle', True)
                and sample_id < len(dataset)):
            info = dataset.get_data_info(sample_id)
            for key in ('filename', 'frame_dir'):
                if info.get(key):
                    return osp.basename(str(info[key]))
        return str(sample_id)
