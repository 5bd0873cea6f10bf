"""Distributed training and testing on machines without CUDA (gloo).

mmengine 0.10.7 assumes GPUs for distributed runs: its pytorch and slurm
launchers call ``torch.cuda.set_device(local_rank)`` before creating the
process group, and ``Runner.wrap_model`` passes
``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``, which torch
rejects for a module on the CPU. :func:`setup_distributed` (called by
``tools/train.py`` and ``tools/test.py``) leaves CUDA machines untouched and,
without CUDA, creates the gloo process group itself (so the Runner skips
``init_dist``) and selects vivit_mm's ``DeviceAwareDDP`` as the model
wrapper.
"""
import datetime
import os
import subprocess
from typing import Optional


LAUNCHERS = ('none', 'pytorch', 'slurm')


def _slurm_env(port: Optional[str]) -> None:
    """Set the torch.distributed env variables from slurm's, as mmengine's
    slurm launcher does, with the local rank from ``SLURM_LOCALID``.

    mmengine's own (``init_dist('slurm', backend='gloo')``) cannot serve
    without CUDA: it calls ``torch.cuda.set_device`` before it creates the
    process group, and without ``SLURM_LOCALID`` it divides by the GPU
    count (tests/tools/test_dist.py checks that this is still so)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_PORT', port or '29500')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['LOCAL_WORLD_SIZE'] = os.environ.get(
        'SLURM_NTASKS_PER_NODE', str(ntasks)).split('(')[0]


def setup_distributed(cfg, launcher: str) -> str:
    """Prepare ``cfg`` and the process group for ``launcher``.

    With CUDA (or ``launcher='none'``) nothing changes: mmengine initialises
    NCCL (or whatever ``env_cfg.dist_cfg`` names) as usual. Without CUDA,
    the backend becomes gloo: this function initialises the process group
    from the launcher's environment (torchrun's ``RANK``/``WORLD_SIZE``/
    ``MASTER_*``, or slurm's variables), sets ``env_cfg.dist_cfg.backend``
    to ``'gloo'`` and, unless the config names another wrapper, wraps the
    model with :class:`DeviceAwareDDP`.

    Args:
        cfg (Config): The config; modified in place.
        launcher (str): 'none', 'pytorch' or 'slurm'.

    Returns:
        str: The backend that will be used ('none' for non-distributed).

    Raises:
        ValueError: ``launcher`` is not one of :data:`LAUNCHERS`.
    """
    import torch  # here: the tools parse their arguments before torch loads
    import torch.distributed as torch_dist
    if launcher not in LAUNCHERS:
        raise ValueError(
            f'launcher must be one of {LAUNCHERS}, got {launcher!r}.')
    cfg.launcher = launcher
    if launcher == 'none':
        return 'none'
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    if torch.cuda.is_available():
        return dist_cfg.get('backend', 'nccl')

    dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='DeviceAwareDDP',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if not torch_dist.is_initialized():
        if launcher == 'slurm':
            _slurm_env(dist_cfg.get('port'))
        timeout = dist_cfg.get('timeout', 1800)
        torch_dist.init_process_group(
            backend='gloo', timeout=datetime.timedelta(seconds=timeout))
    return 'gloo'
