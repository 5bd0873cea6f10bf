"""``BF16OptimWrapper``: bf16 mixed precision through the Runner on a
machine without CUDA."""
import math

import torch

from tests.engine.conftest import loss_runner


def test_bf16_wrapper_trains_on_cpu_with_the_nonfinite_hook(tmp_path):
    """BF16OptimWrapper builds without CUDA, autocasts the forward to bf16,
    keeps float32 parameters, and NonFiniteLossHook works with it like with
    any OptimWrapper."""
    runner, weights = loss_runner(tmp_path, {5: math.nan},
                                  dict(type='NonFiniteLossHook',
                                       action='skip'),
                                  wrapper='BF16OptimWrapper')
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'BF16OptimWrapper'
    assert set(runner.model.dtypes) == {torch.bfloat16}  # every forward
    assert runner.model.fc.weight.dtype == torch.float32
    assert torch.equal(weights.after[2], weights.after[1])  # skipped
    assert not torch.equal(weights.after[3], weights.after[2])
    assert torch.isfinite(runner.model.fc.weight).all()
    # the same run in float32 ends elsewhere: autocast changed the numbers
    fp32, fp32_weights = loss_runner(tmp_path / 'fp32', {5: math.nan},
                                     dict(type='NonFiniteLossHook',
                                          action='skip'))
    fp32.train()
    assert set(fp32.model.dtypes) == {torch.float32}
    assert not torch.equal(fp32_weights.after[-1], weights.after[-1])
    torch.testing.assert_close(fp32_weights.after[-1], weights.after[-1],
                               rtol=0.05, atol=0.02)
