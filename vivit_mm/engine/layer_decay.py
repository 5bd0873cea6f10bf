"""Layer-wise learning-rate decay for ViViT recognizers:
``optim_wrapper.constructor='ViViTLayerDecayOptimWrapperConstructor'``.

It is mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` (parameter
``p`` at layer depth ``d`` of ``num_layers`` gets ``lr = base_lr *
layer_decay_rate ** (num_layers - 1 - d)``), given the depths of the
backbone's ``get_layer_depth`` for a whole MMAction2 recognizer, which has
none: ``backbone.*`` parameters at the backbone's depths, the head (and
anything else outside the backbone) at the top, with the base lr.

mmpretrain's engine package is imported only when a constructor is built:
importing it loads all of mmpretrain (about a second) and torch's dynamo,
which changes torch's weights-only allow-list; ``import vivit_mm`` changes
neither. So the class registered here is a thin front whose instances are
of :class:`~vivit_mm.engine.layer_decay_impl.LayerDecayConstructor`, a
subclass of both it and mmpretrain's constructor.
"""
from mmaction.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViViTLayerDecayOptimWrapperConstructor:
    """mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` for
    MMAction2 recognizers with a ViViT backbone.

    ``paramwise_cfg`` keys, as mmpretrain's:

    - ``layer_decay_rate`` (float in (0, 1]): 1.0 gives every parameter
      the base lr (decay off). Defaults to 1.0.
    - ``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``
      (float): weight-decay multipliers for norm layers, biases and all
      one-dimensional parameters.
    - ``custom_keys`` (dict): ``{substring: dict(decay_mult=...,
      lr_mult=...)}``; e.g. ``'cls_token'`` and ``'pos_embed'`` with
      ``decay_mult=0.0`` (these match Model 2's ``temporal_cls_token`` and
      ``temporal_pos_embed`` too). Unlike mmpretrain's constructor, which
      drops ``lr_mult``, an ``lr_mult`` here multiplies the decayed lr.

    Parameters that do not require gradients (``frozen_stages``) are left
    out of the optimizer. ``optimizer.weight_decay`` must be set (0 for
    none). Every parameter group records ``param_name``, ``layer_id`` and
    ``lr_scale`` (plain strings and numbers, so weights-only checkpoints
    still load).

    Example::

        optim_wrapper = dict(
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='ViViTLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(
                layer_decay_rate=0.75, norm_decay_mult=0.0,
                flat_decay_mult=0.0,
                custom_keys={'cls_token': dict(decay_mult=0.0),
                             'pos_embed': dict(decay_mult=0.0)}))
    """

    def __new__(cls, *args, **kwargs):
        if cls is ViViTLayerDecayOptimWrapperConstructor:
            from .layer_decay_impl import LayerDecayConstructor
            cls = LayerDecayConstructor
        return super().__new__(cls)
