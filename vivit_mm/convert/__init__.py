"""Checkpoint formats, one home: reading (:mod:`.io`, :mod:`.flax_io`),
layout detection (:mod:`.layouts`), the flax-to-torch mapper (:mod:`.flax`),
image ViTs in canonical names (:mod:`.image_vit`), the parameter report
(:mod:`.report`), and the converters of official (scenic) and HuggingFace
ViViT checkpoints to MMAction2 recognizers and of Model 1 back to
HuggingFace (:mod:`.scenic`, :mod:`.hf`, :mod:`.recognizer`).

Every name below is imported from its module when first used
(``from vivit_mm.convert import write_recognizer`` works as usual), so
``import vivit_mm``, which needs only the image ViT reading of inflation,
does not load the converters of other formats.

This package never imports ``transformers`` (only the tests use it, as the
reference); ``safetensors`` and ``msgpack`` are imported by the functions
that read or write those formats.
"""
import importlib

#: Public name -> the module of this package that defines it.
_HOMES = {
    'load_flax_arrays': 'flax_io', 'read_flax_msgpack': 'flax_io',
    'read_checkpoint': 'io', 'safe_load': 'io', 'unwrap_state_dict': 'io',
    'detect_layout': 'layouts', 'InflationReport': 'report',
    **dict.fromkeys(['convert_hf_model_dir', 'detect_hf_layout',
                     'export_hf_model_dir', 'hf_config_to_backbone',
                     'hf_to_vivit_state_dict', 'load_hf_model_dir',
                     'vivit_to_hf_state_dict'], 'hf'),
    **dict.fromkeys(['check_against_config', 'recognizer_config',
                     'save_checkpoint', 'write_config', 'write_recognizer'],
                    'recognizer'),
    **dict.fromkeys(['ConvertedModel', 'convert_scenic_checkpoint',
                     'detect_scenic_model', 'find_params', 'scenic_to_vivit'],
                    'scenic'),
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{home}', __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
