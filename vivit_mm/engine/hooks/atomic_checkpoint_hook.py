"""``CheckpointHook`` whose checkpoints survive a ``kill -9`` at any moment."""
import os
import os.path as osp

from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

TMP_SUFFIX = '.tmp'


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path + TMP_SUFFIX
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with crash-safe writes.

    mmengine 0.10.7 deletes the oldest kept checkpoint *before* writing the
    new one and writes the new file in place. A job killed while saving (a
    checkpoint of ViViT-L takes seconds to write) can thus lose its only
    checkpoint with ``max_keep_ckpts=1``, or leave a truncated file that
    ``last_checkpoint`` points to. This hook writes ``<name>.tmp``, renames
    it to ``<name>`` (atomic on POSIX file systems), then updates
    ``last_checkpoint`` the same way, and only then deletes the checkpoint
    that fell out of ``max_keep_ckpts``. At every moment the work directory
    holds a complete checkpoint that ``last_checkpoint`` names.

    Only local output directories get this treatment; other storage
    backends keep mmengine's behaviour. ``best_*.pth`` files (``save_best``)
    are written by mmengine's code unchanged.
    """

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        doomed = None
        keep = self.keep_ckpt_ids if self.max_keep_ckpts > 0 else None
        if keep is not None and not (keep and keep[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                doomed = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename + TMP_SUFFIX,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        tmp = self.last_ckpt + TMP_SUFFIX
        with open(tmp, 'rb+') as f:  # on disk before it gets its name
            os.fsync(f.fileno())
        os.replace(tmp, self.last_ckpt)
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        if doomed is not None and doomed != step:
            old = osp.join(self.out_dir, self.filename_tmpl.format(doomed))
            if osp.isfile(old):
                os.remove(old)
