"""The memory of one training step, counted on fake tensors.

:func:`plan_step` runs a training step of a config's model and optimizer
the way mmengine's ``BaseModel.train_step`` runs it (preprocess and forward
under the optimizer wrapper's autocast, loss, backward, gradient clipping,
optimizer step, ``zero_grad``) on ``FakeTensorMode`` CPU tensors: shapes,
dtypes and storages as a real step makes them, but nothing is allocated or
computed, so ViViT-L at 32 x 224 is planned in seconds.
:class:`LiveBytes` sees every storage created under it and when it is freed,
so the peak is the high-water mark of what is alive, at any point of the
step (forward, backward, optimizer), not an estimate per component.

Why fake CPU tensors and not the ``meta`` device: on ``meta`` tensors
``torch.autocast`` casts nothing and ``scaled_dot_product_attention`` takes
the math path (an ``N x N`` matrix per head), so neither bf16 nor the fused
attention would be counted as it runs. Fake CPU tensors take the CPU's
dispatch (autocast, the fused flash attention) without its arithmetic.

What the step leaves out: the data preprocessor's batch blending (mixup,
cutmix: it replaces the batch by a same-sized one before the forward) and
the head's top-k accuracy (``[B, classes]`` numpy arrays); the loss is the
head's own ``loss_cls``.
"""
import contextlib
import copy
import weakref
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MiB = 1 << 20
GiB = 1 << 30
#: The CUDA caching allocator rounds every block up to 512 bytes.
CUDA_BLOCK = 512
#: cuBLAS workspace PyTorch allocates per stream through the caching
#: allocator (its default on Hopper; 8.125 MiB on older GPUs).
CUBLAS_WORKSPACE = 32 * MiB


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages alive under it, and their high-water mark.

    Every output of every op is registered once per storage (views share
    it); a finaliser subtracts it when the storage is freed. ``round_to``
    rounds each storage up as an allocator would (512 for CUDA).
    """

    def __init__(self, round_to: int = 1) -> None:
        super().__init__()
        self.round_to = round_to
        self.live = 0
        self.peak = 0
        self._ids: Dict[int, int] = {}

    def size(self, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        return -(-nbytes // self.round_to) * self.round_to

    def track(self, t: torch.Tensor) -> None:
        """Count ``t``'s storage from now until it is freed."""
        st = t.untyped_storage()
        key = id(st)
        if key in self._ids:
            return
        n = self.size(st.nbytes())
        self._ids[key] = n
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(st, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self._ids.pop(key)

    def reset_peak(self) -> int:
        """Start a new high-water mark from the current live bytes."""
        self.peak = self.live
        return self.live

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out, )):
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


@dataclass
class StepPlan:
    """Bytes of one steady-state training step (optimizer states exist).

    ``peak`` is the high-water mark of everything alive on the device;
    the parts: ``params`` (and buffers), ``optimizer`` states, ``inputs``
    (the raw batch), ``activations`` (what the forward keeps for backward:
    live bytes at the loss minus at the start, the normalised input
    included), ``backward_transient`` (the backward's peak above that) and
    ``gradients`` (all of them, at the end of the backward).
    """
    batch_size: int
    precision: str
    with_cp: bool
    device: str
    params: int = 0
    buffers: int = 0
    gradients: int = 0
    optimizer: int = 0
    inputs: int = 0
    activations: int = 0
    saved_for_backward: int = 0
    forward_peak: int = 0
    backward_peak: int = 0
    optimizer_peak: int = 0
    backward_transient: int = 0
    start: int = 0
    workspace: int = 0
    peak: int = 0
    peak_phase: str = ''

    @property
    def increase(self) -> int:
        """Peak above what is resident before the step (what a measured
        peak-RSS increase over that baseline shows)."""
        return self.peak - self.workspace - self.start

    def as_dict(self) -> dict:
        return asdict(self)


def model_cfg_for_plan(cfg, with_cp: Optional[bool] = None) -> dict:
    """The config's model without batch blending, ``with_cp`` set."""
    from vivit_mm.utils.build import without_blending
    model = without_blending(cfg.model)
    if with_cp is not None:
        model['backbone']['with_cp'] = with_cp
    return model


def optimizer_cfg(cfg, device: str) -> dict:
    """The config's ``optim_wrapper`` as a plain ``OptimWrapper`` (the
    precision is applied by the step). On CUDA torch's optimizers default
    to their ``foreach`` implementation (and its temporaries), on the CPU
    to the per-tensor loop; the plan uses the device's default unless the
    config chooses."""
    ow = copy.deepcopy(dict(cfg.optim_wrapper))
    for key in ('type', 'dtype', 'loss_scale', 'use_fsdp'):
        ow.pop(key, None)
    ow['type'] = 'OptimWrapper'
    ow['optimizer'] = dict(ow['optimizer'])
    if device == 'cuda':
        ow['optimizer'].setdefault('foreach', True)
    return ow


def build_wrapper(model, optim_wrapper: dict):
    """mmengine's ``build_optim_wrapper`` under MMAction2's scope (where
    ``BF16OptimWrapper`` and the host's constructors are registered)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmaction'):
        return build_optim_wrapper(model, optim_wrapper)


def config_precision(cfg) -> str:
    """``'bf16'`` if the config's optimizer wrapper autocasts to bfloat16,
    ``'fp16'`` for float16, else ``'fp32'``."""
    ow = cfg.get('optim_wrapper', {}) or {}
    kind = str(ow.get('type', 'OptimWrapper'))
    if kind == 'BF16OptimWrapper':
        return 'bf16'
    if kind == 'AmpOptimWrapper':
        return 'fp16' if str(ow.get('dtype')) in ('float16', 'torch.float16',
                                                   'None') else 'bf16'
    return 'fp32'


_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def _samples(n: int):
    from mmaction.structures import ActionDataSample
    out = []
    for _ in range(n):
        s = ActionDataSample()
        label = torch.zeros(1, dtype=torch.long)
        (s.set_gt_label if hasattr(s, 'set_gt_label')
         else s.set_gt_labels)(label)
        out.append(s)
    return out


def plan_step(cfg, batch_size: int, precision: str = 'fp32',
              with_cp: Optional[bool] = None, device: str = 'cpu',
              prepare: Optional[Callable] = None) -> StepPlan:
    """Count one steady-state training step of ``cfg`` (an mmengine Config
    with ``model`` and ``optim_wrapper``) on fake CPU tensors.

    Args:
        cfg: The config.
        batch_size (int): Clips per device.
        precision (str): ``'fp32'``, ``'bf16'`` or ``'fp16'`` (autocast).
        with_cp (bool, optional): Override the backbone's ``with_cp``.
        device (str): ``'cpu'`` or ``'cuda'`` (512-byte blocks, the cuBLAS
            workspace and ``foreach`` optimizers).
        prepare (callable, optional): Called with the built model before
            the optimizer is built (to freeze parameters, for example).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    from vivit_mm.utils.build import build_model
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    if precision not in ('fp32', 'bf16', 'fp16'):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', got "
                         f'{precision!r}.')
    model_cfg = model_cfg_for_plan(cfg, with_cp)
    plan = StepPlan(batch_size, precision,
                    bool(model_cfg['backbone'].get('with_cp', False)), device)
    tracker = LiveBytes(CUDA_BLOCK if device == 'cuda' else 1)
    with FakeTensorMode(), tracker:
        model = build_model(model_cfg).train()
        if prepare is not None:
            prepare(model)
        ow = build_wrapper(model, optimizer_cfg(cfg, device))
        optimizer = ow.optimizer
        trainable = [p for p in model.parameters() if p.requires_grad]
        plan.params = _storage_bytes(model.parameters(), tracker)
        plan.buffers = _storage_bytes(model.buffers(), tracker)
        # Steady state: the optimizer states exist (made by the same
        # optimizer code, from zero gradients).
        for p in trainable:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        plan.optimizer = _state_bytes(optimizer, tracker)
        shape = _clip_shape(model)
        raw = [torch.empty(1, *shape, dtype=torch.uint8)
               for _ in range(batch_size)]
        plan.inputs = _storage_bytes(raw, tracker)
        samples = _samples(batch_size)
        param_ids = {id(p.untyped_storage()) for p in model.parameters()}
        plan.start = tracker.reset_peak()

        saved: Dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            if id(st) not in param_ids:
                saved[id(st)] = tracker.size(st.nbytes())
            return t

        cast = (torch.autocast('cpu', dtype=_DTYPES[precision])
                if precision in _DTYPES else contextlib.nullcontext())
        with cast, torch.autograd.graph.saved_tensors_hooks(pack,
                                                            lambda t: t):
            inputs = _preprocess(model.data_preprocessor, raw)
            feats, _ = model.extract_feat(inputs, data_samples=samples)
            del inputs
            scores = model.cls_head(feats)
            labels = torch.zeros(batch_size, dtype=torch.long)
            loss = model.cls_head.loss_cls(scores.float(), labels)
        del feats, scores
        plan.saved_for_backward = sum(saved.values())
        plan.forward_peak = tracker.peak
        end_fwd = tracker.reset_peak()
        plan.activations = end_fwd - plan.start
        loss.backward()
        del loss
        plan.backward_peak = tracker.peak
        plan.backward_transient = plan.backward_peak - end_fwd
        plan.gradients = _storage_bytes(
            [p.grad for p in trainable if p.grad is not None], tracker)
        tracker.reset_peak()
        _clip_gradients(trainable, cfg.optim_wrapper.get('clip_grad'))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        plan.optimizer_peak = tracker.peak
    if device == 'cuda':
        plan.workspace = CUBLAS_WORKSPACE
    phases = dict(forward=plan.forward_peak, backward=plan.backward_peak,
                  optimizer=plan.optimizer_peak)
    plan.peak_phase = max(phases, key=phases.get)
    plan.peak = phases[plan.peak_phase] + plan.workspace
    return plan


def _clip_gradients(params, clip) -> None:
    """Gradient clipping as mmengine's ``OptimWrapper`` does it."""
    if not clip:
        return
    clip = dict(clip)
    if clip.pop('type', 'norm') == 'value':
        torch.nn.utils.clip_grad_value_(params, **clip)
    else:
        torch.nn.utils.clip_grad_norm_(params, **clip)


def _preprocess(pre, raw):
    """What ``ActionDataPreprocessor.preprocess`` does to same-sized
    clips in training, without blending: stack, channel order, normalise
    (mmengine's ``stack_batch`` reads a data-dependent padding size, which
    fake tensors cannot give; with equal sizes it is ``torch.stack``)."""
    x = torch.stack(raw)  # [B, clips, C, T, H, W]
    if getattr(pre, 'to_rgb', False):
        x = x[..., [2, 1, 0], :, :, :]
    if getattr(pre, '_enable_normalize', False):
        return (x - pre.mean) / pre.std
    return x.to(torch.float32)


def _storage_bytes(tensors, tracker: LiveBytes) -> int:
    """Bytes of the storages of ``tensors``, each storage once (a view
    keeps its whole storage alive)."""
    seen = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[id(st)] = tracker.size(st.nbytes())
    return sum(seen.values())


def _state_bytes(optimizer, tracker: LiveBytes) -> int:
    return _storage_bytes([v for state in optimizer.state.values()
                           for v in state.values()
                           if isinstance(v, torch.Tensor)], tracker)


def _clip_shape(model) -> tuple:
    """``(C, T, H, W)`` of one training clip of a ViViT recognizer."""
    from vivit_mm.utils.complexity import backbone_input_shape
    return tuple(backbone_input_shape(model.backbone)[1:])


def max_batch(plan: Callable[[int], StepPlan], budget: int,
              limit: int = 1 << 14) -> int:
    """The largest batch ``n`` with ``plan(n).peak <= budget`` (0 if none).

    The forward's and backward's peaks grow linearly in the batch (every
    activation does), so a line through two plans gives a guess (refined
    once through the guess itself); plans around it (doubling steps, then
    halving) settle it, so the answer is counted, not extrapolated. Pass a
    memoised ``plan`` to reuse plans across budgets.
    """
    seen: Dict[int, StepPlan] = {}

    def get(n: int) -> StepPlan:
        if n not in seen:
            seen[n] = plan(n)
        return seen[n]

    def fits(n: int) -> bool:
        return get(n).peak <= budget

    def act(n: int) -> int:
        p = get(n)
        return max(p.forward_peak, p.backward_peak) + p.workspace

    def guess(a: int, b: int) -> int:
        slope = max((act(b) - act(a)) / (b - a), 1.0)
        return max(1, min(limit, a + int((budget - act(a)) // slope)))

    if not fits(1):
        return 0
    n = guess(1, 2)
    if n > 2:
        n = guess(1, n)
    if fits(n):  # gallop up to a batch that does not fit
        lo, step = n, 1
        while lo + step <= limit and fits(lo + step):
            lo, step = lo + step, step * 2
        hi = min(lo + step, limit + 1)
    else:  # gallop down to a batch that fits
        hi, step = n, 1
        while not fits(max(1, hi - step)):
            hi, step = max(1, hi - step), step * 2
        lo = max(1, hi - step)
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def gpu_budget(gib: float, reserve_gib: float, headroom: float) -> int:
    """Bytes a plan may use on a GPU of ``gib`` GiB: minus the CUDA
    context's reserve, divided by ``1 + headroom`` (allocator
    fragmentation)."""
    return int(max(0.0, gib - reserve_gib) * GiB / (1.0 + headroom))


def max_batches(cfg, sizes_gib, precision: str, reserve_gib: float,
                headroom: float) -> Dict[str, Dict[str, int]]:
    """``{"<GiB>": {"without_cp": n, "with_cp": n}}`` for CUDA plans."""
    out: Dict[str, Dict[str, int]] = {}
    plans = {}
    for cp in (False, True):
        cache: Dict[int, StepPlan] = {}

        def plan(n, cp=cp, cache=cache):
            if n not in cache:
                cache[n] = plan_step(cfg, n, precision, cp, 'cuda')
            return cache[n]
        plans[cp] = plan
    for gib in sizes_gib:
        budget = gpu_budget(gib, reserve_gib, headroom)
        out[format_gib(gib)] = {
            'without_cp': max_batch(plans[False], budget),
            'with_cp': max_batch(plans[True], budget)}
    return out


def format_gib(gib: float) -> str:
    """``16`` for 16.0, ``7.5`` for 7.5 (the JSON keys)."""
    return str(int(gib)) if float(gib).is_integer() else f'{gib:g}'


def mib(n: int) -> str:
    return f'{n / MiB:,.1f}'


__all__ = ['LiveBytes', 'StepPlan', 'plan_step', 'max_batch',
           'max_batches', 'gpu_budget', 'config_precision', 'format_gib',
           'mib', 'model_cfg_for_plan', 'optimizer_cfg', 'MiB', 'GiB',
           'CUDA_BLOCK', 'CUBLAS_WORKSPACE']
