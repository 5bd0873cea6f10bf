"""Stop (or skip) a training iteration whose loss is NaN or infinite,
before the optimizer applies it."""
from typing import Dict, List, Optional

import torch
from mmaction.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop

from ...utils import checks

STATE_KEY = 'nonfinite_loss'


def _loss_values(losses: dict) -> List[torch.Tensor]:
    """The tensors ``BaseModel.parse_losses`` sums into the loss: every
    entry whose name contains ``'loss'``."""
    values = []
    for name, value in losses.items():
        if 'loss' in name:
            values += value if isinstance(value, (list, tuple)) else [value]
    return [v for v in values if torch.is_tensor(v)]


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Check the loss of every training iteration before the update.

    When the loss is NaN or +-inf (on any rank: the ranks agree through an
    all-reduce, so a distributed run never hangs):

    * ``action='stop'`` (default): raise ``FloatingPointError`` naming the
      epoch, the iteration and every loss term, before the backward pass.
      The optimizer has not applied the iteration, so the model and the last
      checkpoint hold finite weights.
    * ``action='skip'``: drop the iteration's update (the optimizer step sees
      no gradients, so parameters, momentum and step counts stay as they
      were), warn with the same details and continue; after more than
      ``max_consecutive`` non-finite iterations in a row, stop as above.
      Skips are counted per epoch in the log and survive a resume.

    How, through public extension points only: a forward hook on the model
    (``register_forward_hook``) reads the loss terms of every
    ``mode='loss'`` forward, and for ``'skip'`` a step pre-hook on the
    optimizer (``Optimizer.register_step_pre_hook``) removes the gradients
    of a dropped iteration (torch optimizers skip parameters without one).
    Both are registered in ``before_train`` and removed in ``after_train``.
    Mixed precision: ``AmpOptimWrapper``'s ``GradScaler`` already skips steps
    whose *gradients* overflow; this hook is about the loss itself.

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_consecutive (int): With ``action='skip'``, how many non-finite
            iterations in a row are tolerated. Defaults to 5.
    """

    ACTIONS = ('stop', 'skip')
    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop', max_consecutive: int = 5) -> None:
        self.action = checks.one_of(action, 'action', self.ACTIONS,
                                    'NonFiniteLossHook')
        self.max_consecutive = checks.positive_int(
            max_consecutive, 'max_consecutive', 'NonFiniteLossHook')
        self.skipped = 0  # all skipped iterations of the run
        self.consecutive = 0
        self._epoch_start = 0
        self._drop_step = False
        self._handles: list = []
        self._runner = None
        self._loaded: Optional[tuple] = None

    # ----------------------------------------------------------- install
    def before_train(self, runner) -> None:
        """Register the forward and optimizer-step hooks; restore counters
        after a resume."""
        if self._loaded is not None:
            state, it = self._loaded
            self._loaded = None
            if state is not None and it and runner.iter == it:
                self.skipped = int(state.get('skipped', 0))
                self.consecutive = int(state.get('consecutive', 0))
        if self.action == 'skip':
            counts = (runner.cfg.get('optim_wrapper') or {}).get(
                'accumulative_counts', 1)
            if counts > 1:
                raise ValueError(
                    "NonFiniteLossHook: action='skip' cannot drop one step of "
                    'gradient accumulation (optim_wrapper.accumulative_counts='
                    f"{counts}); use action='stop'.")
        if self._handles:
            return
        self._runner = runner
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        self._handles.append(model.register_forward_hook(
            self._check_losses, with_kwargs=True))
        if self.action == 'skip':
            wrapper = runner.optim_wrapper
            wrappers = wrapper.values() if isinstance(
                wrapper, OptimWrapperDict) else [wrapper]
            for w in wrappers:
                self._handles.append(
                    w.optimizer.register_step_pre_hook(self._maybe_drop))

    def after_train(self, runner) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ------------------------------------------------------------ checks
    def _check_losses(self, module, args, kwargs, output):
        """Forward hook: look at the loss terms of a ``mode='loss'``
        forward."""
        if kwargs.get('mode') != 'loss' or not isinstance(output, dict) \
                or not module.training:
            return None
        values = _loss_values(output)
        bad = torch.zeros(1, dtype=torch.float32,
                          device=values[0].device if values else 'cpu')
        for v in values:
            bad = torch.maximum(bad, (~torch.isfinite(v.detach())).any()
                                .float().reshape(1))
        local = bool(bad.item())
        if get_world_size() > 1:
            all_reduce(bad, op='max')
        if not bool(bad.item()):
            self.consecutive = 0
            self._drop_step = False
            return None
        self._non_finite(output, local)
        return None

    def _maybe_drop(self, optimizer, args, kwargs):
        """Optimizer step pre-hook: a dropped iteration leaves no gradient,
        so the step changes nothing."""
        if self._drop_step:
            for group in optimizer.param_groups:
                for p in group['params']:
                    p.grad = None
            self._drop_step = False
        return None

    def _where(self, runner) -> str:
        where = f'epoch {runner.epoch + 1}, iteration {runner.iter + 1}'
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            n = len(loop.dataloader)
            where += f' (batch {runner.iter - runner.epoch * n + 1} of {n})'
        return where

    def _non_finite(self, losses: Dict[str, torch.Tensor],
                    local: bool) -> None:
        runner = self._runner
        self.consecutive += 1
        # The total as BaseModel.parse_losses logs it, then every term.
        total = sum(float(v.detach().float().mean())
                    for v in _loss_values(losses))
        terms = ', '.join([f'loss={total:.6g}'] + [
            f'{k}={float(v.detach().float().mean()):.6g}'
            if torch.is_tensor(v) else f'{k}={v}'
            for k, v in losses.items()])
        if not local:  # the non-finite loss was on another rank
            terms = f'non-finite on another rank; this rank: {terms}'
        what = (f'NonFiniteLossHook: non-finite loss at {self._where(runner)}'
                f': {terms}. The update was not applied')
        if self.action == 'stop' or self.consecutive > self.max_consecutive:
            why = ('' if self.action == 'stop' else
                   f' and this is the {self.consecutive}th non-finite loss '
                   f'in a row (max_consecutive={self.max_consecutive})')
            raise FloatingPointError(
                f'{what}{why}, so training stops; the model and the last '
                f'checkpoint in {runner.work_dir} hold finite weights. '
                'Usual causes: a learning rate too high, fp16 overflow '
                '(--amp scales the loss dynamically), broken input. To drop '
                "such iterations instead: custom_hooks=[dict(type="
                "'NonFiniteLossHook', action='skip', max_consecutive=K)] or "
                'tools/train.py --nonfinite-loss skip.')
        self.skipped += 1
        self._drop_step = True
        runner.logger.warning(f'{what}; iteration skipped ({self.consecutive}'
                              f' in a row, {self.skipped} so far).')

    # ------------------------------------------------------ epoch summary
    def before_train_epoch(self, runner) -> None:
        self._epoch_start = self.skipped

    def after_train_epoch(self, runner) -> None:
        """Log the epoch's skipped iterations."""
        n = self.skipped - self._epoch_start
        if n:
            runner.logger.warning(
                f'NonFiniteLossHook: skipped {n} iterations with a non-finite'
                f' loss in epoch {runner.epoch + 1} ({self.skipped} in all).')

    # --------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[STATE_KEY] = dict(skipped=self.skipped,
                                     consecutive=self.consecutive)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = (checkpoint.get(STATE_KEY),
                        (checkpoint.get('meta') or {}).get('iter'))
