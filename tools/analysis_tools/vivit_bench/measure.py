"""Measurement helpers of the benchmark (:mod:`vivit_bench`).

Everything here measures; nothing here builds models:

* :func:`matmul_rate`: the machine's dense fp32 matrix-multiply rate
  (FLOP/s), the yardstick for "achieved FLOP/s as a fraction of what the
  hardware does on a large GEMM".
* :func:`time_interleaved`: wall time of several callables, alternating
  them call by call so that load from other processes hits every one alike.
* :func:`saved_activation_bytes`: training activation memory measured
  deterministically as the bytes of the tensors autograd saves for backward
  (deduplicated by storage, parameters excluded).
* :func:`peak_rss_delta` (CPU) and :func:`cuda_peak_bytes` (GPU): peak
  memory of one call.
* :func:`max_tensor_numel`: the largest tensor any op creates during a call
  (used to prove no ``N x N`` attention matrix is materialised).
* :func:`load_average`: the 1-minute load average, recorded with timings.
* :func:`tune_malloc`: keep freed memory in the process (fewer page
  faults on CPU).
"""
import os
import statistics
import time
from typing import (Callable, Dict, Iterable, List, Mapping, Optional,
                    Tuple)

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .rss import reset_peak, status_bytes


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def _elapsed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (CUDA events on GPU)."""
    if torch.device(device).type == 'cuda':
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_interleaved(fns: Mapping[str, Callable[[], object]],
                     iters: int = 5,
                     warmup: int = 1,
                     device: torch.device = torch.device('cpu')
                     ) -> Dict[str, List[float]]:
    """Time several callables, alternating them call by call.

    Round ``i`` calls every function once (in an order rotated by ``i``), so
    background load slows all of them alike; compare medians.

    Args:
        fns (Mapping[str, callable]): Name -> zero-argument callable.
        iters (int): Timed rounds. Defaults to 5.
        warmup (int): Untimed rounds first. Defaults to 1.
        device (torch.device): Where the callables run. Defaults to CPU.

    Returns:
        dict: Name -> list of ``iters`` durations in seconds.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f'iters must be >= 1 and warmup >= 0, got '
                         f'iters={iters}, warmup={warmup}.')
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
        synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(iters):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            synchronize(device)
            times[name].append(_elapsed(fns[name], device))
    return times


def median(xs: Iterable[float]) -> float:
    """The median of ``xs``."""
    return statistics.median(list(xs))


def gemm_probe(n: int = 2048,
               device: torch.device = torch.device('cpu'),
               dtype: torch.dtype = torch.float32
               ) -> Tuple[Callable[[], object], int]:
    """One ``n x n @ n x n`` multiply as a callable, and its FLOPs.

    Timed inside :func:`time_interleaved` next to a model, it gives the
    matrix-multiply rate of the same round, so "achieved / matmul FLOP/s"
    can be formed per round and is robust to background load.
    """
    gen = torch.Generator(device='cpu').manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2 * n**3


def matmul_rate(sizes: Iterable[int] = (2048, 3072, 4096),
                device: torch.device = torch.device('cpu'),
                dtype: torch.dtype = torch.float32,
                iters: int = 5,
                warmup: int = 1) -> Dict[int, float]:
    """Achieved FLOP/s of square ``n x n @ n x n`` matrix multiplies.

    Args:
        sizes (Iterable[int]): Matrix sizes n. Defaults to 2048, 3072, 4096.
        device (torch.device): Device. Defaults to CPU.
        dtype (torch.dtype): Element type. Defaults to float32.
        iters (int): Timed calls per size; the median is used.
        warmup (int): Untimed calls per size first.

    Returns:
        dict: n -> FLOP/s (``2 n^3`` per multiply over the median time).
    """
    rates = {}
    for n in sizes:
        fn, flops = gemm_probe(n, device, dtype)
        times = time_interleaved({'mm': fn}, iters=iters, warmup=warmup,
                                 device=device)['mm']
        rates[n] = flops / median(times)
    return rates


def _storage_key(t: torch.Tensor):
    return (t.device, t.untyped_storage().data_ptr())


def saved_activation_bytes(fn: Callable[[], object],
                           exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs.

    This is training activation memory measured exactly (independent of the
    allocator and of other processes): every tensor packed by autograd is
    recorded through :func:`torch.autograd.graph.saved_tensors_hooks`,
    deduplicated by storage (views of one buffer count once, at the
    storage's full size). With non-reentrant activation checkpointing, the
    tensors saved inside a checkpointed region are dropped and only the
    region's inputs are saved, which is what this counts.

    Args:
        fn (callable): Runs a forward pass with grad enabled; its result is
            kept alive until the count is taken.
        exclude (Iterable[torch.Tensor]): Tensors whose storage is not
            activation memory (pass ``model.parameters()`` and the input).

    Returns:
        int: Bytes.
    """
    excluded = {_storage_key(t) for t in exclude}
    storages: Dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in excluded and t.device.type != 'meta':
            storages[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def peak_rss_delta(fn: Callable[[], object]) -> Optional[int]:
    """Peak resident-set growth of this process during ``fn`` (Linux).

    Resets the kernel's high-water mark (``/proc/self/clear_refs`` = 5)
    before the call and reads ``VmHWM`` after it. Freed memory that the
    allocator keeps makes this an underestimate after earlier large calls,
    so treat it as a cross-check of :func:`saved_activation_bytes`.

    Returns:
        int | None: Bytes, or None where the kernel does not support it.
    """
    if not reset_peak():
        return None
    before = status_bytes('VmRSS')
    fn()
    peak = status_bytes('VmHWM')
    if before is None or peak is None:
        return None
    return max(0, peak - before)


def cuda_peak_bytes(fn: Callable[[], object],
                    device: torch.device) -> int:
    """``torch.cuda.max_memory_allocated`` growth during ``fn``."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


class _LargestTensor(TorchDispatchMode):
    """Records the largest output of any op dispatched under it."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0
        self.op = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out, ):
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.op = t.numel(), str(func)
        return out


def max_tensor_numel(fn: Callable[[], object]) -> tuple:
    """The largest tensor any aten op produces while ``fn`` runs.

    Returns:
        tuple: ``(numel, op name)``.
    """
    with _LargestTensor() as mode:
        fn()
    return mode.numel, mode.op


def tune_malloc(keep_bytes: int = 1 << 30) -> bool:
    """Keep freed memory in this process instead of returning it (glibc).

    By default glibc serves large blocks with fresh ``mmap`` pages and gives
    freed memory back to the system, so every large activation of every
    forward pass is page-faulted in again (thousands of faults per ViViT-B
    forward here). Raising the mmap and trim thresholds (what the
    environment variables ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` do at start-up) lets
    the heap keep and reuse those pages. Call it before the large
    allocations. Affects only this process.

    Args:
        keep_bytes (int): mmap threshold and top pad; the trim threshold is
            four times this. Defaults to 1 GiB.

    Returns:
        bool: False where glibc's ``mallopt`` is unavailable.
    """
    import ctypes
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    # glibc caps the mmap threshold at 32 MiB on 64-bit (HEAP_MAX / 2)
    ok = libc.mallopt(m_mmap_threshold, min(keep_bytes, 32 << 20))
    ok &= libc.mallopt(m_trim_threshold, 4 * keep_bytes)
    ok &= libc.mallopt(m_top_pad, keep_bytes)
    return bool(ok)


def load_average() -> float:
    """The 1-minute load average (NaN where unavailable)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float('nan')


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers."""
    return sum(t.numel() * t.element_size()
               for t in list(model.parameters()) + list(model.buffers()))
