"""Name the checkpoint in the load checks' refusals, and let a training run
start from a backbone checkpoint that only partly fits when asked to."""
from typing import Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...models.utils.load_checks import configure_load_checks


@HOOKS.register_module()
class LoadCheckHook(Hook):
    """Set the load checks of the ViViT backbone and head before the Runner
    loads ``load_from``/``resume`` (``before_run``).

    Every load into a ViViT backbone or head is checked whether or not this
    hook is there (:mod:`vivit_mm.models.utils.load_checks`): a checkpoint
    that does not fit is refused when testing or inferring; when training
    (the Runner has run ``init_weights``), a head of another class count is
    replaced by the freshly initialised one, with one log line. The hook
    adds the checkpoint's file name (``load_from``) to the refusal and the
    option below.

    The shipped configs name it in ``default_hooks.load_check``;
    ``tools/train.py`` and ``tools/test.py`` add it to configs that lack it.

    Args:
        allow_backbone_misfit (bool): When training, let the backbone take
            a checkpoint that only partly fits (another depth, variant or
            width): what fits is loaded, the rest keeps its initialisation,
            with one log line. Testing still refuses. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_backbone_misfit: bool = False) -> None:
        if not isinstance(allow_backbone_misfit, bool):
            raise TypeError('LoadCheckHook: allow_backbone_misfit must be '
                            f'True or False, got {allow_backbone_misfit!r}.')
        self.allow_backbone_misfit = allow_backbone_misfit

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        source: Optional[str] = runner.cfg.get('load_from', None)
        configure_load_checks(
            model, source=f'Checkpoint {source!r}' if source else None,
            allow_backbone_misfit=self.allow_backbone_misfit)
