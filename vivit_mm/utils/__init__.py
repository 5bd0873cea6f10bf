from .build import build_model, parameter_shapes, without_blending
from .compile import compile_backbone
from .complexity import (backbone_input_shape, count_macs, count_params,
                         recognizer_complexity)

__all__ = ['count_macs', 'count_params', 'backbone_input_shape',
           'recognizer_complexity', 'compile_backbone', 'build_model',
           'parameter_shapes', 'without_blending']
