"""Start training from an image ViT: :func:`vivit_mm.inflate_image_weights`
run once by the Runner."""
import logging
import os
from typing import Optional, Sequence, Union

from mmaction.registry import HOOKS
from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ...inflation import check_options, inflate_image_weights
from ...models.backbones.base import BaseViViT


@HOOKS.register_module()
class ViViTInitHook(Hook):
    """Inflate an image ViT checkpoint into the ViViT backbone when training
    starts from scratch.

    When it runs: in ``before_train``, i.e. after the Runner's
    ``model.init_weights()`` (so the parts the image model lacks keep that
    seeded initialisation) and after ``load_from``/``resume``. If the Runner
    restored weights (``load_from``, ``resume``, or an auto-resume that found
    a checkpoint: the Runner then calls ``after_load_checkpoint``), the hook
    does nothing: restored weights always win. It never runs in
    ``Runner.test()``/``val()``.

    Distributed training: every rank reads the same file and computes the
    same values; the backbone is then broadcast from rank 0, so all ranks
    hold identical weights even where something was left random.

    Example::

        custom_hooks = [
            dict(type='ViViTInitHook',
                 checkpoint='checkpoints/vit-base-p16_in21k.pth',
                 tubelet_init='central_frame')
        ]

    Args:
        checkpoint (str | PathLike): Image ViT checkpoint (mmpretrain,
            timm or flax ``.npz`` layout), read with
            ``torch.load(weights_only=True)`` (``.npz``: ``np.load(
            allow_pickle=False)``). A missing file is reported when the hook
            is built (a warning) and is an error when training starts from
            scratch; ``Runner.test()``/``val()`` and runs that resume or
            ``load_from`` a checkpoint do not need it, so one config serves
            training and testing.
        tubelet_init (str): ``'central_frame'``, ``'average'`` or
            ``'random'``. Defaults to ``'central_frame'``.
        temporal_attn_init (str): Model 3: ``'zeros'``, ``'copy'`` or
            ``'random'``. Defaults to ``'zeros'``.
        temporal_encoder_init (str): Model 2: ``'random'`` or ``'image'``.
            Defaults to ``'random'``.
        interpolation (str): ``'bicubic'`` or ``'bilinear'`` position
            embedding resize. Defaults to ``'bicubic'``.
        image_grid (tuple[int, int], optional): Patch grid of a non-square
            image model. Defaults to None.
        module (str): Attribute path from the model to the ViViT backbone;
            ``''`` for the model itself. Defaults to ``'backbone'``.

    See :func:`vivit_mm.inflate_image_weights` for the options.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 checkpoint: Union[str, os.PathLike],
                 tubelet_init: str = 'central_frame',
                 temporal_attn_init: str = 'zeros',
                 temporal_encoder_init: str = 'random',
                 interpolation: str = 'bicubic',
                 image_grid: Optional[Sequence[int]] = None,
                 module: str = 'backbone') -> None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError('ViViTInitHook: checkpoint must be a file path, '
                            f'got {type(checkpoint).__name__}.')
        check_options(tubelet_init, temporal_attn_init,
                      temporal_encoder_init, interpolation, image_grid)
        if not isinstance(module, str):
            raise TypeError('ViViTInitHook: module must be an attribute '
                            f"path such as 'backbone', got {module!r}.")
        self.checkpoint = os.fspath(checkpoint)
        if not os.path.isfile(self.checkpoint):
            print_log(
                f'ViViTInitHook: {self._missing()} Training from scratch '
                'will stop with an error unless load_from/resume restores '
                'weights.', logger='current', level=logging.WARNING)
        self.options = dict(tubelet_init=tubelet_init,
                            temporal_attn_init=temporal_attn_init,
                            temporal_encoder_init=temporal_encoder_init,
                            interpolation=interpolation,
                            image_grid=image_grid)
        self.module = module
        self.report = None  # the InflationReport once the hook has run
        self._done = False
        self._restored = False

    def _missing(self) -> str:
        return (f'the image checkpoint {self.checkpoint!r} does not exist '
                '(download the image ViT first; nothing is fetched at run '
                'time).')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """The Runner restored weights (``load_from``, ``resume``): they
        win, nothing is inflated."""
        self._restored = True

    def _backbone(self, runner) -> BaseViViT:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        target = model
        for name in filter(None, self.module.split('.')):
            if not hasattr(target, name):
                raise ValueError(
                    f'ViViTInitHook: {type(model).__name__} has no '
                    f'{self.module!r} (module={self.module!r}).')
            target = getattr(target, name)
        if not isinstance(target, BaseViViT):
            raise TypeError(
                f'ViViTInitHook: {self.module or "the model"!s} is a '
                f'{type(target).__name__}, not a ViViT backbone.')
        return target

    def before_train(self, runner) -> None:
        """Inflate once, unless the Runner restored weights."""
        if self._done:
            return
        self._done = True
        if self._restored:
            runner.logger.info(
                'ViViTInitHook: the Runner restored weights (load_from/'
                f'resume), so {self.checkpoint} is not inflated.')
            return
        if not os.path.isfile(self.checkpoint):
            raise FileNotFoundError(f'ViViTInitHook: {self._missing()}')
        backbone = self._backbone(runner)
        runner.logger.info(f'ViViTInitHook: inflating {self.checkpoint} '
                           f'into {type(backbone).__name__}.')
        self.report = inflate_image_weights(backbone, self.checkpoint,
                                            logger=runner.logger,
                                            **self.options)
        for tensor in backbone.state_dict().values():
            broadcast(tensor)  # no-op without a process group
