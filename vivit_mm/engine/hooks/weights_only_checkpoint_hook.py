"""Make every checkpoint the Runner saves loadable with
``torch.load(weights_only=True)``."""
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from ...compat import to_weights_only


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Save checkpoints that a weights-only load reads.

    mmengine 0.10.7 saves the message hub's log scalars as ``HistoryBuffer``
    objects that pickle methods through ``builtins.getattr``, and numpy
    scalars, so ``torch.load(weights_only=True)`` (torch's default since
    2.6) refuses its own checkpoints in ``resume``, ``load_from``,
    ``tools/test.py`` and ``init_recognizer``. In ``before_save_checkpoint``
    this hook replaces them by :class:`~vivit_mm.compat.PlainHistoryBuffer`
    and Python numbers (:func:`~vivit_mm.compat.to_weights_only`); the
    weights and the optimizer state are untouched. ``import vivit_mm``
    allow-lists ``PlainHistoryBuffer`` (see :mod:`vivit_mm.compat`).

    The shipped configs name it in ``default_hooks.weights_only``
    (``configs/_base_/default_runtime.py``); ``tools/train.py`` adds it to
    configs that do not.
    """

    priority = 'LOWEST'  # after the other hooks added their state

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key != 'state_dict':
                checkpoint[key] = to_weights_only(checkpoint[key])
