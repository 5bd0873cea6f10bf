"""Random number generator states: capture, restore, seed.

States are captured as tensors, lists and numbers only, so a checkpoint
holding them loads with ``torch.load(weights_only=True)`` and no allow-list
entry.
"""
import random
from typing import Any, Dict

import numpy as np
import torch


def capture_rng_state(cuda: bool = True) -> Dict[str, Any]:
    """The states of Python's ``random``, NumPy's global generator, torch's
    CPU generator and (with ``cuda``) every initialised CUDA generator."""
    version, mt_state, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    cuda_states = []
    if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_states = torch.cuda.get_rng_state_all()
    return dict(
        python=dict(version=int(version), state=list(mt_state),
                    gauss_next=gauss_next),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   cached_gaussian=float(cached)),
        torch=torch.get_rng_state(),
        cuda=cuda_states)


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


def derive_seed(*entropy: int) -> int:
    """A 32-bit seed from ``SeedSequence(entropy)``: distinct entropy tuples
    give independent streams."""
    return int(np.random.SeedSequence([int(e) for e in entropy])
               .generate_state(1)[0])


def seed_everything(*entropy: int) -> None:
    """Seed ``random``, NumPy, torch and every CUDA device from
    :func:`derive_seed`."""
    seed = derive_seed(*entropy)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seed_cpu(*entropy: int) -> None:
    """Seed ``random``, NumPy and torch's CPU generator (not CUDA) from
    :func:`derive_seed`."""
    seed = derive_seed(*entropy)
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)


__all__ = ['capture_rng_state', 'apply_rng_state', 'derive_seed',
           'seed_everything', 'seed_cpu']
