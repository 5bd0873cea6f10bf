"""CPU threads and data-loader workers that fit the CPUs a process is given.

Video training on a CPU runs two kinds of work side by side: the main
process's tensor operations (torch's intra-op OpenMP threads) and the data
workers' decoding and transforms (one process each). Sized for the host's
CPUs rather than the process's (a cgroup quota, an affinity mask), or
spinning in OpenMP while the workers or other processes need the CPUs, a
run on a shared machine becomes many times slower than its fair share (see
``docs/performance.md``, "CPU threads and workers").

This module decides the numbers from what the process is actually given:

* :func:`available_cpus`: CPU affinity (``os.sched_getaffinity``, which
  includes cpusets and ``taskset``) intersected with the cgroup CPU quota
  (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``);
* :func:`choose_threads`: torch's intra-op threads, each data worker's
  threads and the worker count of every data loader; an explicit
  ``OMP_NUM_THREADS`` wins, then ``env_cfg.cpu_threads`` of the config;
* :func:`configure_threads`: what the tools call: records the choice in the
  config (``env_cfg.cpu_threads_chosen`` and each loader's ``num_workers``,
  so the Runner's config dump shows it), applies it to this process and
  returns the line to log.

Importing this module (or ``vivit_mm``) changes nothing; only
:func:`apply_threads` (called by the tools) sets torch's thread count.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

#: The data loaders of a config whose ``num_workers`` the choice sets.
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: Where :func:`record_choice` writes the decision in ``env_cfg``.
CHOSEN_KEY = 'cpu_threads_chosen'
#: Threads of one data worker: torch's DataLoader sets one torch thread in
#: each worker, MMAction2's ``DecordInit`` decodes with ``num_threads=1``
#: and mmengine sets OpenCV to ``mp_cfg.opencv_num_threads=0`` (sequential)
#: before the workers fork. Workers scale by processes, not threads.
WORKER_THREADS = 1


@dataclass(frozen=True)
class CpuInfo:
    """The CPUs this process may use, and where the number comes from.

    Attributes:
        cpus (int): usable CPUs, at least 1: ``min(affinity, ceil(quota))``.
        affinity (int): CPUs in the affinity mask.
        quota (float, optional): the cgroup CPU quota in CPUs (quota /
            period), None without a limit.
    """
    cpus: int
    affinity: int
    quota: Optional[float] = None

    def describe(self) -> str:
        quota = 'none' if self.quota is None else f'{self.quota:g} CPUs'
        return (f'{self.cpus} CPU{"s" if self.cpus != 1 else ""} available '
                f'(affinity {self.affinity}, cgroup quota {quota})')


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the
    platform has no ``sched_getaffinity``)."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_cpu_quota(root: str = '/sys/fs/cgroup') -> Optional[float]:
    """The cgroup CPU quota of this process in CPUs, None without one.

    Reads cgroup v2's ``<root>/cpu.max`` (``"max 100000"`` or
    ``"200000 100000"``), else cgroup v1's ``<root>/cpu/cpu.cfs_quota_us``
    and ``cpu.cfs_period_us`` (quota ``-1``: no limit), as seen inside the
    process's own cgroup namespace (a container's limit).

    Raises:
        ValueError: a quota file exists but cannot be parsed.
    """
    v2 = _read(os.path.join(root, 'cpu.max'))
    if v2 is not None:
        parts = v2.split()
        if len(parts) not in (1, 2):
            raise ValueError(f'Cannot parse {root}/cpu.max: {v2!r}')
        quota = parts[0]
        period = parts[1] if len(parts) == 2 else '100000'
    else:
        v1 = os.path.join(root, 'cpu')
        quota = _read(os.path.join(v1, 'cpu.cfs_quota_us'))
        period = _read(os.path.join(v1, 'cpu.cfs_period_us'))
        if quota is None or period is None:
            return None
    if quota in ('max', '-1'):
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        raise ValueError(f'Cannot parse the cgroup CPU quota under {root}: '
                         f'quota {quota!r}, period {period!r}') from None
    if q <= 0 or p <= 0:
        return None
    return q / p


def available_cpus(root: str = '/sys/fs/cgroup') -> CpuInfo:
    """The CPUs this process may use: affinity, capped by the cgroup quota
    rounded up (a quota of 1.5 CPUs gives 2), at least 1."""
    affinity = affinity_cpus()
    quota = cgroup_cpu_quota(root)
    cpus = affinity if quota is None else min(affinity,
                                              max(1, math.ceil(quota)))
    return CpuInfo(cpus=max(1, cpus), affinity=affinity, quota=quota)


def omp_num_threads(environ: Mapping[str, str]) -> Optional[int]:
    """``OMP_NUM_THREADS`` of ``environ`` as a thread count, None when unset
    or empty. A list (``"4,2"``, nested levels) gives its first entry.

    Raises:
        ValueError: the value is not a positive integer.
    """
    text = environ.get('OMP_NUM_THREADS', '').strip()
    if not text:
        return None
    first = text.split(',')[0].strip()
    try:
        value = int(first)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f'OMP_NUM_THREADS={text!r} is not a positive integer: set it '
            'to the number of threads for torch (e.g. OMP_NUM_THREADS=2), '
            'or unset it to let vivit_mm choose from the available CPUs.')
    return value


def _positive(value, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{what} must be a positive integer or None (choose '
                         f'from the available CPUs), got {value!r}')
    return value


@dataclass(frozen=True)
class ThreadChoice:
    """The decided numbers and why.

    Attributes:
        cpu (CpuInfo): what the process may use.
        intra_op_threads (int): torch's intra-op threads in the main process.
        worker_threads (int): threads of each data worker.
        num_workers (dict): loader name -> (requested, chosen) workers.
        source (str): where ``intra_op_threads`` comes from:
            ``'OMP_NUM_THREADS'``, ``'env_cfg.cpu_threads'`` or ``'auto'``.
        processes (int): processes of this run sharing the CPUs.
        omp_wait_policy (str, optional): ``OMP_WAIT_POLICY`` of the
            environment (the tools set ``PASSIVE`` unless it is set).
    """
    cpu: CpuInfo
    intra_op_threads: int
    worker_threads: int = WORKER_THREADS
    num_workers: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    source: str = 'auto'
    processes: int = 1
    omp_wait_policy: Optional[str] = None

    def describe(self) -> str:
        """The one line the tools log."""
        src = {'OMP_NUM_THREADS': 'set by OMP_NUM_THREADS',
               'env_cfg.cpu_threads': 'set by env_cfg.cpu_threads',
               'auto': 'OMP_NUM_THREADS unset'}[self.source]
        workers = ', '.join(
            f'{name.replace("_dataloader", "")} {chosen}'
            + (f' (config {asked})' if chosen != asked else '')
            for name, (asked, chosen) in self.num_workers.items())
        shared = (f', shared by {self.processes} processes'
                  if self.processes > 1 else '')
        return (f'vivit_mm threads: {self.cpu.describe()}{shared}; '
                f'torch intra-op '
                f'{self.intra_op_threads} ({src}); data workers '
                f'{workers or "none"}, {self.worker_threads} thread each; '
                f'OMP_WAIT_POLICY {self.omp_wait_policy or "unset"}')


def choose_threads(cpu: CpuInfo,
                   requested_workers: Mapping[str, int],
                   environ: Mapping[str, str] = os.environ,
                   intra_op_threads: Optional[int] = None,
                   max_workers: Optional[int] = None,
                   processes: int = 1) -> ThreadChoice:
    """Decide the threads and workers for ``cpu``.

    * The CPUs are shared by the ``processes`` training processes of this
      machine (distributed ranks): each gets ``share = cpus // processes``.
    * Workers: each loader keeps its requested count, at most
      ``max_workers`` (default: ``share``; more workers than CPUs only
      compete).
    * torch intra-op threads: ``OMP_NUM_THREADS`` if set, else
      ``intra_op_threads`` if given, else the CPUs the busiest loader's
      workers leave free, at least 1: the input pipeline of video training
      keeps its workers busy, and threads beyond the free CPUs wait for
      CPUs the workers hold. The tools also set ``OMP_WAIT_POLICY=PASSIVE``
      (``tools/vivit_cli/threads.py``) so that, where torch has several
      threads, they sleep rather than spin while the workers run. Measured
      in docs/performance.md, "CPU threads and workers".

    Args:
        cpu (CpuInfo): from :func:`available_cpus`.
        requested_workers (dict): loader name -> the config's num_workers.
        environ (dict): the environment (``OMP_NUM_THREADS``).
        intra_op_threads (int, optional): explicit intra-op threads.
        max_workers (int, optional): cap of each loader's workers.
        processes (int): processes sharing the CPUs (``LOCAL_WORLD_SIZE``).

    Raises:
        ValueError: a bad ``OMP_NUM_THREADS``, ``intra_op_threads``,
            ``max_workers`` or worker count.
    """
    intra_op_threads = _positive(intra_op_threads,
                                 'env_cfg.cpu_threads.intra_op_threads')
    cap = _positive(max_workers, 'env_cfg.cpu_threads.max_workers')
    share = max(1, cpu.cpus // _positive(processes, 'processes'))
    cap = share if cap is None else cap
    workers = {}
    for name, asked in requested_workers.items():
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 0:
            raise ValueError(f'{name}.num_workers must be a non-negative '
                             f'integer, got {asked!r}')
        workers[name] = (asked, min(asked, cap))
    env_threads = omp_num_threads(environ)
    if env_threads is not None:
        intra, source = env_threads, 'OMP_NUM_THREADS'
    elif intra_op_threads is not None:
        intra, source = intra_op_threads, 'env_cfg.cpu_threads'
    else:
        busiest = max((chosen for _, chosen in workers.values()), default=0)
        intra = max(1, share - busiest * WORKER_THREADS)
        source = 'auto'
    return ThreadChoice(cpu=cpu, intra_op_threads=intra,
                        num_workers=workers, source=source,
                        processes=processes,
                        omp_wait_policy=environ.get('OMP_WAIT_POLICY'))


def local_processes(environ: Mapping[str, str] = os.environ) -> int:
    """Processes of this run on this machine: torchrun's
    ``LOCAL_WORLD_SIZE``, else 1.

    Raises:
        ValueError: ``LOCAL_WORLD_SIZE`` is not a positive integer.
    """
    text = environ.get('LOCAL_WORLD_SIZE', '').strip() or '1'
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f'LOCAL_WORLD_SIZE={text!r} is not a positive '
                         'integer')
    return int(text)


def requested_workers(cfg) -> Dict[str, int]:
    """``num_workers`` of each data loader the config has (0 if unset)."""
    out = {}
    for name in LOADERS:
        loader = cfg.get(name, None)
        if isinstance(loader, dict):
            out[name] = loader.get('num_workers', 0)
    return out


def record_choice(cfg, choice: ThreadChoice) -> None:
    """Write ``choice`` into ``cfg`` (in place): each loader's
    ``num_workers`` (``persistent_workers`` off where none are left) and
    ``env_cfg.cpu_threads_chosen`` (what was decided and from where; read by
    nothing, shown in the Runner's config dump)."""
    for name, (_, chosen) in choice.num_workers.items():
        loader = cfg[name]
        loader.num_workers = chosen
        if chosen == 0 and loader.get('persistent_workers'):
            loader.persistent_workers = False  # the DataLoader requires it
    env_cfg = cfg.get('env_cfg', None)
    if env_cfg is None:
        cfg.env_cfg = env_cfg = {}
    env_cfg[CHOSEN_KEY] = dict(cpus=choice.cpu.cpus,
                               intra_op_threads=choice.intra_op_threads,
                               worker_threads=choice.worker_threads,
                               source=choice.source)


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op threads of this process (the data workers get
    ``worker_threads`` from torch's DataLoader, see :data:`WORKER_THREADS`).
    """
    import torch
    if torch.get_num_threads() != choice.intra_op_threads:
        torch.set_num_threads(choice.intra_op_threads)


def configure_threads(cfg, environ: Mapping[str, str] = os.environ,
                      root: str = '/sys/fs/cgroup') -> ThreadChoice:
    """Choose, record in ``cfg`` and apply the threads and workers of a run.

    What the tools call once, after the config is complete and before the
    Runner is built. A config can pin the numbers with
    ``env_cfg.cpu_threads = dict(intra_op_threads=N, max_workers=M)``
    (either None: chosen); ``OMP_NUM_THREADS`` wins over both.

    Returns:
        ThreadChoice: log ``choice.describe()``.
    """
    env_cfg = cfg.get('env_cfg', None) or {}
    settings = env_cfg.get('cpu_threads', None) or {}
    unknown = set(settings) - {'intra_op_threads', 'max_workers'}
    if unknown:
        raise ValueError(f'env_cfg.cpu_threads has unknown keys '
                         f'{sorted(unknown)}; it takes intra_op_threads and '
                         'max_workers.')
    choice = choose_threads(available_cpus(root), requested_workers(cfg),
                            environ,
                            intra_op_threads=settings.get('intra_op_threads'),
                            max_workers=settings.get('max_workers'),
                            processes=local_processes(environ))
    record_choice(cfg, choice)
    apply_threads(choice)
    return choice
