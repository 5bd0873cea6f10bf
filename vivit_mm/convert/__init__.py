"""Checkpoint converters: HuggingFace and official (scenic/flax) ViViT
checkpoints to MMAction2 recognizers, and Model 1 back to HuggingFace.

This package never imports ``transformers`` itself (only the tests use it,
as the reference); ``safetensors`` and ``msgpack`` are imported by the
functions that read or write those formats.
"""
from .hf import (convert_hf_model_dir, detect_hf_layout, export_hf_model_dir,
                 hf_config_to_backbone, hf_to_vivit_state_dict,
                 load_hf_model_dir, vivit_to_hf_state_dict)
from .flax_io import load_flax_arrays, read_flax_msgpack
from .recognizer import (check_against_config, recognizer_config,
                         save_checkpoint, write_config)
from .scenic import (convert_scenic_checkpoint, detect_scenic_model,
                     find_params, scenic_to_vivit)

__all__ = [
    'detect_hf_layout', 'hf_to_vivit_state_dict', 'vivit_to_hf_state_dict',
    'hf_config_to_backbone', 'load_hf_model_dir', 'convert_hf_model_dir',
    'export_hf_model_dir', 'recognizer_config', 'write_config',
    'save_checkpoint', 'check_against_config', 'read_flax_msgpack',
    'load_flax_arrays', 'find_params', 'detect_scenic_model',
    'scenic_to_vivit', 'convert_scenic_checkpoint'
]
