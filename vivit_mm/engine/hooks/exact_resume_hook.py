"""Resume a killed training run so that it ends where an uninterrupted run
with the same seed ends.

mmengine restores the weights, optimizer, schedulers, message hub and the
epoch/iteration counters on ``resume``, but not the random number
generators, and it restarts an interrupted epoch from its first batch.
:class:`ExactResumeHook` adds what is missing (see its docstring).
"""
from typing import Optional

from mmaction.registry import HOOKS
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from ...datasets.samplers import ResumableSampler
from ...datasets.wrappers import ReproducibleDataset, find_wrapped
from ...utils.rng import capture_rng_state, seed_everything

STATE_KEY = 'exact_resume'
STATE_VERSION = 2


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``resume`` continue exactly where the checkpoint left off.

    What it adds to mmengine's resume:

    * **Per-epoch seeding.** At the start of every training epoch the
      Python, NumPy, torch and CUDA generators are seeded from
      ``(runner.seed, epoch)`` (``runner.seed`` already differs per rank
      when ``randomness.diff_rank_seed`` is set), so a run resumed from an
      end-of-epoch checkpoint draws exactly the random numbers (dropout,
      drop path, mixup) that the uninterrupted run draws, on every rank,
      whatever happened in between (validation, logging). With a
      :class:`~vivit_mm.datasets.samplers.ResumableSampler` the seeded
      states are put back when the epoch's first index is handed out, so
      the DataLoader's own draw (its base seed, taken when an iterator is
      created: with persistent workers only in a run's first epoch) does
      not shift the streams of a resumed run.
    * **The sampler's seed** is saved and restored (a run with
      ``randomness.seed=None`` otherwise reshuffles differently after a
      resume).
    * **Mid-epoch checkpoints** (``CheckpointHook(by_epoch=False)``): with
      the training sampler a
      :class:`~vivit_mm.datasets.samplers.ResumableSampler`, the interrupted
      epoch continues with the next unseen batch instead of restarting from
      its first one, and rank 0's generator states saved with the checkpoint
      are restored just before that batch is loaded.

    The data augmentation is made independent of DataLoader workers by
    :class:`~vivit_mm.datasets.wrappers.ReproducibleDataset` around the
    training data set (each sample seeded with ``(seed, epoch, index)``);
    the shipped configs use both. Without it, a run with ``num_workers > 0``
    and persistent workers draws other augmentations after a resume; the
    hook warns once.

    Exactness: a resume reproduces the uninterrupted run bit for bit
    wherever the computation itself is deterministic (CPU, or
    ``randomness.deterministic=True`` on GPU), for end-of-epoch and, with
    one process, mid-epoch checkpoints. With several processes, ranks other
    than 0 continue a mid-epoch resume with fresh generator streams (only
    rank 0's are saved); the data order stays exact. Iteration-based loops
    keep mmengine's own resume (it replays the data loader); only
    per-epoch seeding and the sampler seed apply there.

    The checkpoint gets one extra entry, ``'exact_resume'``, holding only
    tensors, lists and numbers.
    """

    priority = 'LOWEST'  # seed after every other hook's before_train_epoch

    def __init__(self) -> None:
        self._loaded: Optional[tuple] = None
        self._resumed_mid_epoch = False
        self._warned = False
        self._sampler = None  # the training sampler, once training starts

    # ---------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the sampler seed and this process's generator states."""
        seed = getattr(self._sampler, 'seed', None)
        checkpoint[STATE_KEY] = dict(
            version=STATE_VERSION,
            rng=capture_rng_state(),
            world_size=get_world_size(),
            sampler_seed=None if seed is None else int(seed))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep what the checkpoint saved; used in ``before_train``."""
        self._loaded = (checkpoint.get(STATE_KEY),
                        dict(checkpoint.get('meta') or {}))

    # -------------------------------------------------------------- resume
    def before_train(self, runner) -> None:
        """Check the configuration; after ``resume``, restore the sampler
        seed and, for a mid-epoch checkpoint, skip the consumed batches and
        restore the generator states."""
        loader = runner.train_dataloader
        self._sampler = loader.sampler
        self._check_setup(runner, loader)
        if self._loaded is None:
            return
        saved, meta = self._loaded
        self._loaded = None
        if meta.get('iter', 0) == 0 or runner.iter != meta.get('iter'):
            return  # load_from (fine-tuning), not a resume
        if saved is None:
            runner.logger.warning(
                'ExactResumeHook: the checkpoint has no exact_resume state '
                '(saved without this hook); the resumed run continues with '
                'other random numbers than an uninterrupted run would.')
            return
        sampler = self._sampler
        seed = saved.get('sampler_seed')
        if seed is not None and hasattr(sampler, 'seed') \
                and sampler.seed != seed:
            runner.logger.info(f'ExactResumeHook: sampler seed {sampler.seed}'
                               f' -> {seed} (from the checkpoint).')
            sampler.seed = seed
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            runner.logger.info(
                'ExactResumeHook: iteration-based loop; mmengine replays the '
                'data loader up to the resumed iteration.')
            return
        consumed = runner.iter - runner.epoch * len(loader)
        if consumed == 0:
            return  # end-of-epoch checkpoint: per-epoch seeding suffices
        if not 0 < consumed <= len(loader):
            runner.logger.warning(
                f'ExactResumeHook: iteration {runner.iter} is not inside '
                f'epoch {runner.epoch + 1} of {len(loader)} batches (did the '
                'batch size or number of processes change?); the epoch '
                'restarts from its first batch.')
            return
        if not isinstance(sampler, ResumableSampler):
            runner.logger.warning(
                'ExactResumeHook: the training sampler is a '
                f'{type(sampler).__name__}, which cannot skip the consumed '
                f'batches; epoch {runner.epoch + 1} restarts from its first '
                "batch. Use sampler=dict(type='ResumableSampler').")
            return
        rng = saved.get('rng')
        if get_world_size() > 1 and get_rank() != 0:
            rng = None  # only rank 0 saves its generator states
        sampler.resume_after(consumed * loader.batch_size, rng)
        self._resumed_mid_epoch = True
        runner.logger.info(
            f'ExactResumeHook: mid-epoch checkpoint; epoch {runner.epoch + 1}'
            f' continues after its first {consumed} of {len(loader)} '
            'batches.')

    def _check_setup(self, runner, loader) -> None:
        """Warn once when the data side cannot be reproduced exactly."""
        if self._warned:
            return
        self._warned = True
        missing = []
        if not isinstance(getattr(loader, 'sampler', None),
                          ResumableSampler):
            missing.append("sampler=dict(type='ResumableSampler')")
        if loader.num_workers > 0 and find_wrapped(
                loader.dataset, ReproducibleDataset) is None:
            missing.append("dataset=dict(type='ReproducibleDataset', "
                           'dataset=...)')
        if missing:
            runner.logger.warning(
                'ExactResumeHook: a resumed run may draw other data '
                'augmentations or restart an interrupted epoch; for an exact '
                'resume, set in train_dataloader: ' + ' and '.join(missing) +
                ' (as the shipped configs do).')

    # ---------------------------------------------------------- every epoch
    def before_train_epoch(self, runner) -> None:
        """Seed the generators from (seed, epoch)."""
        seed = runner.seed
        if seed is None:
            return
        seed_everything(int(seed), runner.epoch, 0)
        if self._resumed_mid_epoch:
            if get_world_size() > 1 and get_rank() != 0:
                # No saved state on this rank: a fresh stream for the rest.
                seed_everything(int(seed), runner.epoch, runner.iter, 2)
            return  # the sampler restores the checkpoint's states
        if isinstance(self._sampler, ResumableSampler):
            # A DataLoader iterator draws its base seed from torch's
            # generator when it is created: every epoch, but with
            # persistent workers only in a run's first epoch, so a resumed
            # run would draw once more than the uninterrupted one. The
            # sampler puts the seeded states back when the epoch's first
            # index is handed out, after that draw.
            self._sampler.resume_after(0, capture_rng_state())

    def after_train_epoch(self, runner) -> None:
        self._resumed_mid_epoch = False


__all__ = ['ExactResumeHook', 'STATE_KEY']
