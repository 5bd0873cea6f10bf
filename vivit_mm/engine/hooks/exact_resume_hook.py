"""Resume a killed training run so that it ends where an uninterrupted run
with the same seed ends.

mmengine restores the weights, optimizer, schedulers, message hub and the
epoch/iteration counters on ``resume``, but not the random number
generators, and it restarts an interrupted epoch from its first batch.
:class:`ExactResumeHook` adds what is missing (see its docstring).
"""
import random
from functools import partial
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmengine.runner.base_loop import BaseLoop
from torch.utils.data import BatchSampler

STATE_KEY = 'exact_resume'
STATE_VERSION = 1


# ----------------------------------------------------------------- RNG state
def capture_rng_state() -> Dict[str, Any]:
    """The states of Python's ``random``, NumPy's global generator, torch's
    CPU generator and every initialised CUDA generator, as tensors, lists and
    numbers only (a checkpoint holding them loads with ``weights_only=True``
    and no extra allow-list entry)."""
    version, mt_state, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return dict(
        python=dict(version=int(version), state=list(mt_state),
                    gauss_next=gauss_next),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   cached_gaussian=float(cached)),
        torch=torch.get_rng_state(),
        cuda=cuda)


def apply_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned."""
    py = state['python']
    random.setstate((py['version'], tuple(py['state']), py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(('MT19937', npy['keys'].cpu().numpy().astype(
        np.uint32), npy['pos'], npy['has_gauss'], npy['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available() \
            and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def seed_everything(*entropy: int) -> None:
    """Seed ``random``, NumPy, torch and CUDA from ``SeedSequence(entropy)``
    (distinct entropy tuples give independent streams)."""
    seed = int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seed_worker(worker_id: int, seed: int, epoch: int, rank: int,
                disable_subprocess_warning: bool = False) -> None:
    """DataLoader ``worker_init_fn``: seed worker ``worker_id`` from
    ``(seed, epoch, rank, worker_id)``, so every epoch's augmentation draws
    are new and reproducible (mmengine's default gives a worker the same
    seed in every epoch)."""
    seed_everything(seed, epoch, rank, worker_id, 1)
    if disable_subprocess_warning and worker_id != 0:
        import warnings
        warnings.simplefilter('ignore')


# ------------------------------------------------------------ sampler skip
class _SkipThenRestore:
    """Stands in for a batch sampler's index sampler for one epoch: on the
    first ``next()`` it restores the saved RNG state (after the DataLoader
    iterator drew its base seed, before the first sample is loaded, as in
    the interrupted run), then yields the sampler's indices without the
    first ``skip`` ones, and finally puts the original sampler back."""

    def __init__(self, batch_sampler: BatchSampler, skip: int,
                 rng_state: Optional[Dict[str, Any]]) -> None:
        self.batch_sampler = batch_sampler
        self.sampler = batch_sampler.sampler
        self.skip = skip
        self.rng_state = rng_state

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:  # set_epoch, seed, ...
        return getattr(self.__dict__['sampler'], name)

    def __iter__(self) -> Iterator[int]:
        try:
            if self.rng_state is not None:
                apply_rng_state(self.rng_state)
            indices = iter(self.sampler)
            for _ in range(self.skip):
                next(indices, None)
            yield from indices
        finally:
            self.uninstall()

    def uninstall(self) -> None:
        if self.batch_sampler.sampler is self:
            self.batch_sampler.sampler = self.sampler


# --------------------------------------------------------------------- hook
@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``resume`` continue exactly where the checkpoint left off.

    What it adds to mmengine's resume:

    * **Per-epoch seeding.** At the start of every training epoch the
      Python, NumPy, torch and CUDA generators are seeded from
      ``(runner.seed, epoch)`` (``runner.seed`` already differs per rank
      when ``randomness.diff_rank_seed`` is set), so a run resumed from an
      end-of-epoch checkpoint draws exactly the random numbers (dropout,
      drop path, augmentation) that the uninterrupted run draws, on every
      rank, whatever happened in between (validation, logging).
    * **Data loader workers** (``reseed_workers=True``): mmengine seeds a
      worker identically in every epoch and a persistent worker is never
      re-seeded. Instead, workers are seeded from ``(seed, epoch, rank,
      worker id)`` and persistent workers are restarted at each epoch, so a
      resumed run's workers draw what the uninterrupted run's draw.
    * **The sampler's seed** is saved and restored (a run with
      ``randomness.seed=None`` otherwise reshuffles differently after a
      resume).
    * **Mid-epoch checkpoints** (``CheckpointHook(by_epoch=False)``): the
      interrupted epoch continues with the next unseen batch instead of
      restarting from its first one, and rank 0's generator states saved
      with the checkpoint are restored just before that batch is loaded.

    Exactness: an end-of-epoch resume reproduces the uninterrupted run
    bit for bit wherever the computation itself is deterministic (CPU, or
    ``randomness.deterministic=True`` on GPU). A mid-epoch resume does so
    with one process and ``num_workers=0``; otherwise the rest of that
    epoch gets other (equally valid) random draws and the data order stays
    exact. Iteration-based loops (``IterBasedTrainLoop``) keep mmengine's
    own resume (it replays the data loader); only per-epoch seeding and
    the sampler seed apply there.

    The checkpoint gets one extra entry, ``'exact_resume'``, holding only
    tensors, lists and numbers.

    Args:
        reseed_workers (bool): Seed DataLoader workers per epoch and restart
            persistent workers every epoch (see above). Defaults to True.
    """

    priority = 'LOWEST'  # seed after every other hook's before_train_epoch

    def __init__(self, reseed_workers: bool = True) -> None:
        if not isinstance(reseed_workers, bool):
            raise TypeError('ExactResumeHook: reseed_workers must be True or '
                            f'False, got {reseed_workers!r}.')
        self.reseed_workers = reseed_workers
        self._loaded: Optional[tuple] = None
        self._shim: Optional[_SkipThenRestore] = None

    # ---------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the sampler seed and this process's generator states."""
        sampler = getattr(runner.train_dataloader, 'sampler', None) \
            if self._has_train_loader(runner) else None
        seed = getattr(sampler, 'seed', None)
        checkpoint[STATE_KEY] = dict(
            version=STATE_VERSION,
            rng=capture_rng_state(),
            world_size=get_world_size(),
            sampler_seed=None if seed is None else int(seed))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep what the checkpoint saved; used in ``before_train``."""
        self._loaded = (checkpoint.get(STATE_KEY),
                        dict(checkpoint.get('meta') or {}))

    @staticmethod
    def _has_train_loader(runner) -> bool:
        """Whether the training loop (and so its data loader) is built."""
        return isinstance(getattr(runner, '_train_loop', None), BaseLoop)

    # -------------------------------------------------------------- resume
    def before_train(self, runner) -> None:
        """After ``resume``: restore the sampler seed; for a mid-epoch
        checkpoint, skip the consumed batches and restore the RNG state."""
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
        loader = runner.train_dataloader
        sampler = getattr(loader, 'sampler', None)
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
        batch_sampler = getattr(loader, 'batch_sampler', None)
        if type(batch_sampler) is not BatchSampler:
            runner.logger.warning(
                'ExactResumeHook: cannot skip the consumed batches with the '
                f'batch sampler {type(batch_sampler).__name__}; the epoch '
                'restarts from its first batch.')
            return
        rng = saved.get('rng')
        if get_world_size() > 1 and get_rank() != 0:
            rng = None  # only rank 0 saves its generator states
        self._shim = _SkipThenRestore(batch_sampler,
                                      consumed * batch_sampler.batch_size,
                                      rng)
        batch_sampler.sampler = self._shim
        runner.logger.info(
            f'ExactResumeHook: mid-epoch checkpoint; epoch {runner.epoch + 1}'
            f' continues after its first {consumed} of {len(loader)} '
            'batches.')

    # ---------------------------------------------------------- every epoch
    def before_train_epoch(self, runner) -> None:
        """Seed the generators (and workers) from (seed, epoch)."""
        seed = runner.seed
        if seed is None:
            return
        seed_everything(int(seed), runner.epoch, 0)
        if self.reseed_workers:
            self._reseed_workers(runner, int(seed))
        if self._shim is not None:
            if get_world_size() > 1 and get_rank() != 0:
                # No saved state on this rank: a fresh stream for the rest.
                seed_everything(int(seed), runner.epoch, runner.iter, 2)

    def after_train_epoch(self, runner) -> None:
        """Drop the mid-epoch shim once its epoch is over."""
        if self._shim is not None:
            self._shim.uninstall()
            self._shim = None

    def _reseed_workers(self, runner, seed: int) -> None:
        loader = runner.train_dataloader
        if loader.num_workers == 0:
            return
        init_fn = loader.worker_init_fn
        ours = isinstance(init_fn, partial) and init_fn.func is seed_worker
        theirs = isinstance(init_fn, partial) \
            and init_fn.func is mmengine_worker_init_fn
        if init_fn is not None and not (ours or theirs):
            return  # a user-defined worker_init_fn: leave it alone
        quiet = init_fn.keywords.get('disable_subprocess_warning', False) \
            if init_fn is not None else False
        loader.worker_init_fn = partial(
            seed_worker, seed=seed, epoch=runner.epoch, rank=get_rank(),
            disable_subprocess_warning=quiet)
        iterator = getattr(loader, '_iterator', None)
        if loader.persistent_workers and iterator is not None:
            # Persistent workers are never re-initialised: restart them.
            iterator._shutdown_workers()
            loader._iterator = None

