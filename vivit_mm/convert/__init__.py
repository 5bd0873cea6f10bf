"""Checkpoint formats, one home: reading (:mod:`.io`, :mod:`.flax_io`),
layout detection (:mod:`.layouts`), the flax-to-torch mapper (:mod:`.flax`),
image ViTs in canonical names (:mod:`.image_vit`), the parameter report
(:mod:`.report`), and the converters of official (scenic) and HuggingFace
ViViT checkpoints to MMAction2 recognizers and of Model 1 back to
HuggingFace (:mod:`.scenic`, :mod:`.hf`, :mod:`.recognizer`).

This package never imports ``transformers`` (only the tests use it, as the
reference); ``safetensors`` and ``msgpack`` are imported by the functions
that read or write those formats.
"""
from .flax_io import load_flax_arrays, read_flax_msgpack
from .hf import (convert_hf_model_dir, detect_hf_layout, export_hf_model_dir,
                 hf_config_to_backbone, hf_to_vivit_state_dict,
                 load_hf_model_dir, vivit_to_hf_state_dict)
from .io import read_checkpoint, safe_load, unwrap_state_dict
from .layouts import detect_layout
from .recognizer import (check_against_config, recognizer_config,
                         save_checkpoint, write_config, write_recognizer)
from .report import InflationReport
from .scenic import (ConvertedModel, convert_scenic_checkpoint,
                     detect_scenic_model, find_params, scenic_to_vivit)

__all__ = [
    'safe_load', 'read_checkpoint', 'unwrap_state_dict', 'detect_layout',
    'detect_hf_layout', 'hf_to_vivit_state_dict', 'vivit_to_hf_state_dict',
    'hf_config_to_backbone', 'load_hf_model_dir', 'convert_hf_model_dir',
    'export_hf_model_dir', 'recognizer_config', 'write_config',
    'save_checkpoint', 'check_against_config', 'write_recognizer',
    'read_flax_msgpack', 'load_flax_arrays', 'find_params',
    'detect_scenic_model', 'scenic_to_vivit', 'convert_scenic_checkpoint',
    'ConvertedModel', 'InflationReport'
]
