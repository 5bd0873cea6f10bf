"""Make the optimizer's parameter groups plain ``dict``s, so that
``torch.compile`` can trace the optimizer step of a config with a
``paramwise_cfg``."""
from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict


def plain_param_groups(optimizer) -> int:
    """Replace every parameter group of ``optimizer`` that is a ``dict``
    subclass (mmengine's ``ConfigDict``) by a plain ``dict`` with the same
    items, in place. Returns how many groups were replaced.

    The optimizer's state is keyed by parameters, not groups, and
    schedulers read ``optimizer.param_groups`` by position, so both are
    unaffected.
    """
    groups = optimizer.param_groups
    replaced = 0
    for i, group in enumerate(groups):
        if type(group) is not dict:
            groups[i] = dict(group)
            replaced += 1
    return replaced


@HOOKS.register_module()
class PlainParamGroupsHook(Hook):
    """Let ``compile = True`` work with an optimizer ``paramwise_cfg``.

    mmengine's ``DefaultOptimWrapperConstructor`` puts the parameter groups
    it makes for a ``paramwise_cfg`` into the optimizer's ``ConfigDict``, and
    ``ConfigDict`` turns each group into a ``ConfigDict``. torch 2.x's dynamo
    cannot trace an optimizer step over such groups (it stops with
    ``'UserDefinedDictVariable' object has no attribute 'items'``), so a
    config that sets both ``compile`` and ``paramwise_cfg`` fails at its
    first iteration. In ``before_train`` (after the optimizer and the
    schedulers are built and a resume has been loaded, before the compiled
    ``train_step`` first runs) this hook makes the groups plain ``dict``s.
    Nothing else changes: same parameters, learning rates, weight decays
    and optimizer state.

    ``tools/train.py`` and ``tools/run_demo.py`` add it whenever the config
    sets ``compile``; add it to ``custom_hooks`` yourself when you build the
    Runner in your own code.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        wrappers = (wrapper.values() if isinstance(wrapper, OptimWrapperDict)
                    else [wrapper])
        replaced = sum(plain_param_groups(w.optimizer) for w in wrappers)
        if replaced:
            runner.logger.info(f'PlainParamGroupsHook: {replaced} optimizer '
                               'parameter groups made plain dicts (for '
                               'torch.compile).')

