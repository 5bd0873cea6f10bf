"""The tools' CPU threads and data workers: chosen once per run from the
CPUs the process is given (:mod:`vivit_mm.utils.threads`), recorded in the
config the Runner dumps, logged once.

A tool calls :func:`prepare_openmp` first in ``main()`` (before torch is
imported) and :func:`setup_threads` when its config is complete.
"""
import os
import sys
from typing import Dict, MutableMapping

#: OpenMP settings a tool puts in its environment before torch loads
#: (libgomp reads them once, when it is loaded), unless already set.
#: ``PASSIVE``: a thread waiting for work sleeps instead of spinning, so it
#: leaves its CPU to the data workers and to other processes (measured in
#: docs/performance.md, "CPU threads and workers").
OPENMP_ENV = {'OMP_WAIT_POLICY': 'PASSIVE'}


def prepare_openmp(environ: MutableMapping[str, str] = os.environ
                   ) -> Dict[str, str]:
    """Add the entries of :data:`OPENMP_ENV` that ``environ`` lacks (an
    explicit setting wins); returns what was added. Does nothing once torch
    is imported (OpenMP has read its settings then), e.g. when a test calls
    a tool's ``main()``."""
    if 'torch' in sys.modules:
        return {}
    added = {k: v for k, v in OPENMP_ENV.items() if not environ.get(k)}
    environ.update(added)
    return added


def setup_threads(cfg):
    """Choose, record in ``cfg`` and apply the threads and workers; call
    after the config is complete, before the Runner is built.

    Returns:
        vivit_mm.utils.threads.ThreadChoice: log ``describe()`` once.

    Raises:
        SystemExit: a bad ``OMP_NUM_THREADS``, ``LOCAL_WORLD_SIZE`` or
            ``env_cfg.cpu_threads``, with the message.
    """
    from vivit_mm.utils.threads import configure_threads
    try:
        return configure_threads(cfg)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None


def setup_inference_threads():
    """Threads of a tool that runs a model without data workers (the demo):
    all the CPUs the process is given to torch (``OMP_NUM_THREADS`` wins),
    applied; returns the :class:`~vivit_mm.utils.threads.ThreadChoice`."""
    from vivit_mm.utils.threads import (apply_threads, available_cpus,
                                        choose_threads)
    try:
        choice = choose_threads(available_cpus(), {})
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    apply_threads(choice)
    return choice
