"""``CheckpointHook`` whose checkpoints survive a ``kill -9`` at any
moment."""
import os
import os.path as osp
import re

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from ..file_backends import atomic_write


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with crash-safe
    checkpoints in a local output directory.

    mmengine writes a checkpoint in place and, with ``max_keep_ckpts``,
    deletes the oldest kept checkpoint *before* writing the new one. A job
    killed while saving (a ViViT-L checkpoint takes seconds to write) can
    leave a truncated file that ``last_checkpoint`` names, or lose its only
    checkpoint with ``max_keep_ckpts=1``. This hook

    * writes checkpoints through the ``atomic_local`` file backend
      (temporary file, ``fsync``, rename; see
      :mod:`vivit_mm.engine.file_backends`), then rewrites
      ``last_checkpoint`` the same way, and
    * keeps the newest ``max_keep_ckpts`` checkpoints itself, deleting the
      older ones only after the new one is complete (mmengine's own pruning
      is turned off). It keeps the newest files named like
      ``filename_tmpl`` in the output directory, whichever run wrote them.

    At every moment the output directory holds a complete checkpoint, and
    ``last_checkpoint`` names a complete one. ``best_*.pth`` (``save_best``)
    files are written through the same backend. An output directory on
    another storage backend (``out_dir='s3://...'`` or ``backend_args``
    naming a backend) keeps mmengine's behaviour.

    It overrides only public hook stages (``after_train_epoch``,
    ``after_train_iter``).
    """

    def __init__(self, *args, max_keep_ckpts: int = -1, out_dir=None,
                 backend_args=None, **kwargs) -> None:
        self.atomic = backend_args is None and (
            out_dir is None or '://' not in str(out_dir))
        self.keep_last = max_keep_ckpts
        super().__init__(
            *args, out_dir=out_dir,
            max_keep_ckpts=-1 if self.atomic else max_keep_ckpts,
            backend_args=dict(backend='atomic_local') if self.atomic
            else backend_args, **kwargs)

    def after_train_epoch(self, runner) -> None:
        """Save (as ``CheckpointHook``), then prune old checkpoints."""
        saved = self.last_ckpt
        super().after_train_epoch(runner)
        self._after_save(runner, saved)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Save (as ``CheckpointHook``), then prune old checkpoints."""
        saved = self.last_ckpt
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self._after_save(runner, saved)

    def _after_save(self, runner, previous) -> None:
        if not self.atomic or not is_main_process() \
                or self.last_ckpt in (None, previous):
            return  # nothing saved by this call
        atomic_write(self.last_ckpt.encode(),
                     osp.join(runner.work_dir, 'last_checkpoint'))
        if self.keep_last > 0:
            self._prune()

    def _prune(self) -> None:
        """Delete all but the newest ``keep_last`` checkpoints named like
        ``filename_tmpl`` in the output directory."""
        # Any replacement field: '{}', '{:03d}' ...
        pattern = re.compile(re.sub(r'\\\{[^}]*\\\}', lambda _: r'(\d+)',
                                    re.escape(self.filename_tmpl), count=1))
        steps = sorted(
            (int(m.group(1)), name) for name in os.listdir(self.out_dir)
            for m in [pattern.fullmatch(name)] if m)
        for _, name in steps[:-self.keep_last]:
            path = osp.join(self.out_dir, name)
            if path != self.last_ckpt and osp.isfile(path):
                os.remove(path)
