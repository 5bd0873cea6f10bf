"""Performance paths: activation checkpointing, the fused attention path
and bf16 autocast (no timing assertions:
speed is checked by tools/analysis_tools/benchmark.py, whose own tests are
in tests/benchmark and tests/tools/test_benchmark_tool.py).

Budget: under 30 s on 2 cores.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vivit_bench.measure import (max_tensor_numel,
                                        saved_activation_bytes)
from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4

VARIANTS = [ViViTM1, ViViTM2, ViViTM3, ViViTM4]
ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)


class _Ops(TorchDispatchMode):
    """Names of the aten ops dispatched under it."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.__name__.split('.')[0])
        return func(*args, **(kwargs or {}))


# ------------------------------------------ memory savers and fused paths
def _tiny(cls, **kw):
    torch.manual_seed(0)
    m = cls(arch=dict(ARCH), img_size=64, num_frames=8, patch_size=8, **kw)
    m.init_weights()
    return m


def test_with_cp_halves_activation_memory_and_keeps_gradients():
    x = torch.randn(1, 3, 8, 64, 64)
    grads, saved = [], []
    for cp in (False, True):
        m = _tiny(ViViTM1, with_cp=cp).train()
        params = list(m.parameters())
        saved.append(saved_activation_bytes(lambda: m(x),
                                            exclude=params + [x]))
        m(x).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]))
    assert 0 < saved[1] <= 0.5 * saved[0]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('cls', VARIANTS, ids=lambda c: c.__name__)
def test_fused_path_never_materialises_an_attention_matrix(cls):
    """Forward and backward of the default (fused SDPA) path: no softmax or
    batched matmul is dispatched and no tensor reaches N x N elements (N =
    all 4 x 64 tokens), while the explicit path does dispatch them, so the
    check can fail."""
    x = torch.randn(1, 3, 8, 64, 64)
    m = _tiny(cls).train()
    n = m.num_temporal_tokens * m.num_spatial_tokens

    def step():
        m(x).sum().backward()

    with _Ops() as mode:
        step()
    assert not {'_softmax', '_safe_softmax', 'bmm'} & mode.ops
    assert any('scaled_dot_product' in op for op in mode.ops)
    numel, op = max_tensor_numel(step)
    assert numel < n * n, op

    explicit = _tiny(cls, fused_attn=False).train()
    with _Ops() as mode:
        explicit(x).sum().backward()
    assert {'_softmax', 'bmm'} <= mode.ops
    if cls is ViViTM1:
        numel, _ = max_tensor_numel(lambda: explicit(x).sum().backward())
        assert numel >= ARCH['num_heads'] * n * n


@pytest.mark.parametrize('cls', VARIANTS, ids=lambda c: c.__name__)
def test_bf16_autocast_forward_and_backward(cls):
    x = torch.randn(2, 3, 8, 64, 64)
    m = _tiny(cls).train()
    ref = m(x)
    dtypes = []
    m.layers[0].mlp.fc1.register_forward_hook(
        lambda mod, inp, out: dtypes.append(out.dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = m(x)
    assert dtypes == [torch.bfloat16]  # the MLP ran in bf16
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 5e-2
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters()
               if p.grad is not None)
    assert m.patch_embed.projection.weight.grad is not None
