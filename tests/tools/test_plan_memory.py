"""tools/analysis_tools/plan_memory.py and tools/vivit_cli/memory_plan.py:
the planned step saves exactly what a real mmengine training step saves,
its parameter, gradient and optimizer-state bytes follow from the
optimizer, the planned peak agrees with a measured peak RSS, and the
largest batch per GPU is the last batch that fits.

Budget: about a minute on 2 shared cores (one measured subprocess)."""
import json
from importlib.machinery import SourceFileLoader

import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO
from vivit_cli.memory_plan import (StepPlan, gpu_budget, max_batch,
                                   plan_step)

TINY = dict(embed_dims=32, num_layers=2, num_heads=4,
            feedforward_channels=64)


def _cfg(variant: int, **backbone) -> Config:
    cfg = Config.fromfile(str(REPO / f'configs/vivit_m{variant}_k400.py'))
    cfg.model.backbone.update(arch=dict(TINY), img_size=32, num_frames=8,
                              patch_size=8, tubelet_size=2)
    cfg.model.backbone.update(backbone)
    if variant == 2:
        cfg.model.backbone.num_temporal_layers = 1
    cfg.model.cls_head.update(num_classes=10, in_channels=32)
    return cfg


def _param_bytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def _real_saved_bytes(cfg: Config, batch: int, precision: str) -> int:
    """Bytes autograd saves during mmengine's ``train_step`` of the real
    model on the CPU (storages deduplicated by address, parameters
    excluded): an independent count on real tensors."""
    from vivit_cli.memory_plan import _samples, build_wrapper, optimizer_cfg
    from vivit_mm.utils.build import build_model
    torch.manual_seed(0)
    model = build_model(cfg.model, 'cpu').train()
    ow = optimizer_cfg(cfg, 'cpu')
    if precision == 'bf16':
        ow['type'] = 'BF16OptimWrapper'
    ow = build_wrapper(model, ow)
    clip = (3, model.backbone.num_frames, *model.backbone.img_size)
    data = dict(inputs=[torch.randint(0, 256, (1, *clip), dtype=torch.uint8)
                        for _ in range(batch)],
                data_samples=_samples(batch))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train_step(data, ow)
    return sum(saved.values())


@pytest.mark.parametrize('variant', [1, 2, 3, 4])
@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_planned_step_saves_what_a_real_step_saves(variant, precision):
    cfg = _cfg(variant)
    plan = plan_step(cfg, 3, precision)
    assert plan.saved_for_backward == _real_saved_bytes(cfg, 3, precision)
    # without checkpointing, what the forward keeps is what it saves, and
    # the loss (a float32 scalar)
    assert plan.activations == plan.saved_for_backward + 4
    assert plan.peak == max(plan.forward_peak, plan.backward_peak,
                            plan.optimizer_peak)


def test_with_cp_and_bf16_keep_less_and_fp32_activations_are_linear():
    cfg = _cfg(1)
    full, cp = plan_step(cfg, 4, 'fp32', False), plan_step(cfg, 4, 'fp32',
                                                             True)
    assert cp.with_cp and not full.with_cp
    assert cp.activations < 0.6 * full.activations
    assert plan_step(cfg, 4, 'bf16').activations < full.activations
    # every activation but the loss is per clip: exactly linear in the batch
    two, six = (plan_step(cfg, n, 'fp32').activations for n in (2, 6))
    assert six - full.activations == full.activations - two > 0


def test_parameters_gradients_and_optimizer_states():
    cfg = _cfg(1)
    from vivit_mm.utils.build import build_model
    plan = plan_step(cfg, 2)  # SGD with momentum: one buffer per parameter
    params = list(build_model(cfg.model, 'meta').parameters())
    n = _param_bytes(params)
    assert plan.params == n and plan.gradients == n and plan.optimizer == n
    cfg.optim_wrapper.optimizer = dict(type='AdamW', lr=1e-3)
    # two moments per parameter and a float32 step counter per tensor
    assert plan_step(cfg, 2).optimizer == 2 * n + 4 * len(params)
    cfg.optim_wrapper.optimizer = dict(type='SGD', lr=0.1)
    assert plan_step(cfg, 2).optimizer == 0

    def freeze(model):
        model.backbone.patch_embed.requires_grad_(False)

    cfg.optim_wrapper.optimizer = dict(type='SGD', lr=0.1, momentum=0.9)
    frozen = plan_step(cfg, 2, prepare=freeze)
    stem = _param_bytes(build_model(cfg.model, 'meta').backbone.patch_embed
                        .parameters())
    assert stem > 0
    assert frozen.gradients == frozen.optimizer == n - stem


def test_cuda_plan_rounds_blocks_and_adds_the_workspace():
    cfg = _cfg(4)
    cpu, cuda = plan_step(cfg, 2), plan_step(cfg, 2, device='cuda')
    assert cuda.workspace == 32 << 20
    assert cuda.params % 512 == 0 and cuda.params > cpu.params
    assert cuda.peak > cpu.peak + cuda.workspace


class _Plan:
    """A stand-in for StepPlan: the optimizer step's constant peak wins at
    small batches, the backward's linear one at large batches."""

    def __init__(self, n):
        self.forward_peak, self.backward_peak = 900 + 37 * n, 1000 + 40 * n
        self.optimizer_peak, self.workspace = 1500, 0
        self.peak = max(self.backward_peak, self.optimizer_peak)


@pytest.mark.parametrize('budget', [999, 1500, 1539, 1540, 1541, 5000, 40001])
def test_max_batch_is_the_last_batch_that_fits(budget):
    brute = max([0] + [n for n in range(1, 2000)
                       if _Plan(n).peak <= budget])
    assert max_batch(_Plan, budget) == brute


def _tool():
    return SourceFileLoader('vivit_plan_memory', str(
        REPO / 'tools/analysis_tools/plan_memory.py')).load_module()


def test_largest_batches_grow_with_gpu_memory_and_with_cp(tmp_path):
    cfg = _cfg(2)
    cfg.dump(str(tmp_path / 'tiny.py'))
    sizes = ['0.045', '0.06']
    out = _tool().main([str(tmp_path / 'tiny.py'), '--json', '--precision',
                        'bf16', '--batch-size', '2', '--reserve', '0',
                        '--gpu-mem', *sizes])
    assert set(out) >= {'params', 'gradients', 'optimizer', 'activations',
                        'peak'}
    rows = [out['max_batch'][s] for s in sizes]
    for small, large in zip(rows, rows[1:]):
        assert large['without_cp'] > small['without_cp']
        assert large['with_cp'] > small['with_cp']
    for row in rows:
        assert row['with_cp'] > row['without_cp'] > 0
    # the answer is the boundary: it fits, one more clip does not
    n, budget = rows[1]['without_cp'], gpu_budget(0.06, 0, 0.1)
    assert plan_step(cfg, n, 'bf16', False, 'cuda').peak <= budget
    assert plan_step(cfg, n + 1, 'bf16', False, 'cuda').peak > budget


def test_planned_peak_matches_the_measured_peak_rss(tmp_path, capsys):
    """A step whose activations dominate (a wide token grid, a narrow
    model): planned within 15 % of the peak RSS increase measured in a
    fresh process."""
    cfg = _cfg(1, img_size=64, num_frames=16)
    cfg.model.backbone.arch.update(embed_dims=64, feedforward_channels=256)
    cfg.model.cls_head.in_channels = 64
    cfg.dump(str(tmp_path / 'wide.py'))
    out = _tool().main([str(tmp_path / 'wide.py'), '--json', '--measure',
                        '--batch-size', '16', '--precision', 'fp32'])
    assert json.loads(capsys.readouterr().out)['peak'] == out['peak']
    measured = out['measured']['increase']
    if measured is None:
        pytest.skip('/proc/self/clear_refs is not writable here')
    assert out['activations'] > 50 << 20
    assert abs(out['increase'] - measured) <= 0.15 * measured, (
        out['increase'], measured)


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        plan_step(_cfg(1), 0)
    with pytest.raises(ValueError, match='precision'):
        plan_step(_cfg(1), 1, 'fp8')
    assert isinstance(plan_step(_cfg(3), 1), StepPlan)
