"""Helpers of the command-line tools in ``tools/`` (not part of the
``vivit_mm`` library): pre-flight checks, what the training flags add to a
config, distributed set-up without CUDA, the converters' shared options.

The scripts put ``tools/`` on ``sys.path`` and import ``vivit_cli``.
"""
