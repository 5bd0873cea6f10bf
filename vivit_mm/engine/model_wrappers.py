"""``DeviceAwareDDP``: distributed data parallel for models on the CPU too.

mmengine 0.10.7's ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]``
to ``DistributedDataParallel``, which torch rejects for a module on the CPU
(gloo). Name this wrapper in ``model_wrapper_cfg`` (``tools/train.py`` and
``tools/test.py`` do that on machines without CUDA).
"""
import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAwareDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that drops ``device_ids`` and
    ``output_device`` when the wrapped module lives on the CPU (gloo);
    for a CUDA module it behaves exactly like its parent."""

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        param = next(module.parameters(), None)
        if param is None or param.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, **kwargs)


__all__ = ['DeviceAwareDDP']
