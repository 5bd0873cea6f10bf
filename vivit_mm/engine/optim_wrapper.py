"""bf16 mixed-precision training on any device, the CPU included.

mmengine 0.10.7's ``AmpOptimWrapper`` refuses to be built without CUDA, NPU,
MLU or MUSA, so a CPU with native bf16 (AVX-512 BF16, AMX) cannot train in
mixed precision through the Runner. :class:`BF16OptimWrapper` runs the
forward pass (and so the backward of the autocast ops) under
``torch.autocast(<the model's device type>, dtype=torch.bfloat16)``. bf16
has float32's exponent range, so no loss scaling is needed (the reason
GPUs' fp16 AMP has a ``GradScaler``); parameters, gradients and the
optimizer state stay float32.
"""
import contextlib

import torch
from mmaction.registry import OPTIM_WRAPPERS
from mmengine.optim import OptimWrapper
from torch import nn


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or
    AMX); elsewhere bf16 autocast works but is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` autocasts to bfloat16 on the
    model's device (CPU or GPU), without loss scaling.

    ``tools/train.py --amp`` selects it on machines without CUDA (with CUDA
    it keeps MMAction2's ``AmpOptimWrapper``). In a config::

        optim_wrapper = dict(type='BF16OptimWrapper', optimizer=...)

    Args:
        **kwargs: As :class:`mmengine.optim.OptimWrapper`.
    """

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), \
                torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield


__all__ = ['BF16OptimWrapper', 'cpu_has_native_bf16']
