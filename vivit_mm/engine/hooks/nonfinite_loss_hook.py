"""Stop (or skip) a training iteration whose loss is NaN or infinite,
before the optimizer applies it."""
from typing import Dict, Optional

import torch
from mmaction.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.runner import EpochBasedTrainLoop

STATE_KEY = 'nonfinite_loss'


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Check the loss of every training iteration before the update.

    When the loss is NaN or +-inf (on any rank: the ranks agree through an
    all-reduce, so a distributed run never hangs):

    * ``action='stop'`` (default): raise ``FloatingPointError`` naming the
      epoch, the iteration and every loss term. The optimizer has not
      applied the iteration, so the model and the last checkpoint hold
      finite weights.
    * ``action='skip'``: drop the iteration (no optimizer step, gradients
      zeroed, a warning with the same details) and continue; after more
      than ``max_consecutive`` non-finite iterations in a row, stop as
      above. Skips are counted per epoch in the log and survive a resume.

    How: in ``before_train`` the hook wraps ``update_params`` of the
    Runner's ``OptimWrapper`` (``AmpOptimWrapper`` included) and the model's
    ``parse_losses`` (to read the loss terms); nothing else changes.
    Mixed precision: ``AmpOptimWrapper``'s ``GradScaler`` already skips
    steps whose *gradients* overflow; this hook is about the loss itself.

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_consecutive (int): With ``action='skip'``, how many non-finite
            iterations in a row are tolerated. Defaults to 5.
    """

    ACTIONS = ('stop', 'skip')
    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop', max_consecutive: int = 5) -> None:
        if action not in self.ACTIONS:
            raise ValueError(f'NonFiniteLossHook: action must be one of '
                             f'{self.ACTIONS}, got {action!r}.')
        if (not isinstance(max_consecutive, int)
                or isinstance(max_consecutive, bool) or max_consecutive < 1):
            raise ValueError('NonFiniteLossHook: max_consecutive must be an '
                             f'int >= 1, got {max_consecutive!r}.')
        self.action = action
        self.max_consecutive = max_consecutive
        self.skipped = 0  # all skipped iterations of the run
        self.consecutive = 0
        self._epoch_start = 0
        self._last_terms: Dict[str, torch.Tensor] = {}
        self._patched: Optional[tuple] = None
        self._loaded: Optional[tuple] = None

    # ------------------------------------------------------------ patching
    def before_train(self, runner) -> None:
        """Wrap ``update_params`` and ``parse_losses``; restore counters
        after a resume."""
        if self._loaded is not None:
            state, it = self._loaded
            self._loaded = None
            if state is not None and it and runner.iter == it:
                self.skipped = int(state.get('skipped', 0))
                self.consecutive = int(state.get('consecutive', 0))
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper):
            runner.logger.warning(
                'NonFiniteLossHook supports a single OptimWrapper, got '
                f'{type(wrapper).__name__}; losses are not checked.')
            return
        if self.action == 'skip' and wrapper._accumulative_counts > 1:
            raise ValueError(
                "NonFiniteLossHook: action='skip' cannot drop one step of "
                'gradient accumulation (optim_wrapper.accumulative_counts='
                f"{wrapper._accumulative_counts}); use action='stop'.")
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if self._patched is not None:
            return
        update_params, parse_losses = wrapper.update_params, \
            model.parse_losses

        def checked_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            self._last_terms = log_vars
            return loss, log_vars

        def checked_update_params(loss, step_kwargs=None, zero_kwargs=None):
            if self._is_finite(loss):
                self.consecutive = 0
                return update_params(loss, step_kwargs=step_kwargs,
                                     zero_kwargs=zero_kwargs)
            return self._non_finite(runner, wrapper, loss)

        wrapper.update_params = checked_update_params
        model.parse_losses = checked_parse_losses
        self._patched = (wrapper, model)

    def after_train(self, runner) -> None:
        """Remove the wrappers."""
        if self._patched is not None:
            wrapper, model = self._patched
            del wrapper.update_params, model.parse_losses
            self._patched = None

    @staticmethod
    def _is_finite(loss: torch.Tensor) -> bool:
        bad = (~torch.isfinite(loss.detach())).any().float().reshape(1)
        if get_world_size() > 1:
            all_reduce(bad, op='max')
        return not bool(bad.item())

    def _where(self, runner) -> str:
        where = f'epoch {runner.epoch + 1}, iteration {runner.iter + 1}'
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            n = len(loop.dataloader)
            where += f' (batch {runner.iter - runner.epoch * n + 1} of {n})'
        return where

    def _non_finite(self, runner, wrapper: OptimWrapper,
                    loss: torch.Tensor) -> None:
        self.consecutive += 1
        terms = ', '.join(f'{k}={float(v.detach().float().mean()):.6g}'
                          if torch.is_tensor(v) else f'{k}={v}'
                          for k, v in self._last_terms.items())
        local = bool(torch.isfinite(loss.detach()).all())
        values = terms or f'loss={loss.detach().float()}'
        if local:  # the non-finite loss was on another rank
            values = f'non-finite on another rank; this rank: {values}'
        what = (f'NonFiniteLossHook: non-finite loss at {self._where(runner)}'
                f': {values}. The update was not applied')
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
        runner.logger.warning(f'{what}; iteration skipped ({self.consecutive}'
                              f' in a row, {self.skipped} so far).')
        if get_world_size() > 1:
            # Every rank skips; let DDP finish this iteration's gradient
            # reduction before the gradients are discarded.
            loss.backward()
        wrapper.zero_grad()

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
