"""Which model family named a state dict's keys: the one layout detector.

========== ================================================================
layout     keys
========== ================================================================
mmpretrain ``layers.N.ln1``, ``layers.N.ffn.layers.0.0`` (image ViT),
           optionally under ``backbone.``
timm       ``blocks.N.norm1``/``attn``/``mlp`` (image ViT)
flax       ``Transformer/encoderblock_N/...``: the original ViT ``.npz``,
           big_vision and scenic trees (image ViTs and ViViT Models 1-4,
           ``SpatialTransformer``/``TemporalTransformer`` for Model 2)
hf-4.x     HuggingFace ViViT, transformers 4.x names
           (``encoder.layer.N.attention.attention.query``)
hf-5.x     HuggingFace ViViT, transformers 5.x names
           (``layers.N.attention.q_proj``)
vivit_mm   this package's own ViViT (``layers.N.mlp.fc1``), optionally
           under ``backbone.``
========== ================================================================
"""
import re
from typing import Callable, Dict, Iterable, Sequence

_PATTERNS: Dict[str, Callable[[str], bool]] = {
    'flax': re.compile(r'(^|/)(Spatial|Temporal)?Transformer/encoderblock_'
                       r'\d+/').search,
    'hf-4.x': re.compile(r'(^|\.)encoder\.layer\.\d+\.attention\.attention\.'
                         r'query\.weight$').search,
    'hf-5.x': re.compile(r'(^|\.)layers\.\d+\.attention\.q_proj\.weight$'
                         ).search,
    'mmpretrain': re.compile(r'(backbone\.)?layers\.\d+\.(ln1|ffn)\.').match,
    'timm': re.compile(r'blocks\.\d+\.(norm1|attn|mlp)\.').match,
    'vivit_mm': re.compile(r'(backbone\.)?layers\.\d+\.mlp\.fc1\.').match,
}
#: What each layout looks like, for error messages.
DESCRIPTIONS = {
    'mmpretrain': 'an mmpretrain VisionTransformer (layers.N.ln1, '
                  'layers.N.ffn.layers.0.0, optionally under backbone.)',
    'timm': 'a timm VisionTransformer (blocks.N.norm1/attn/mlp)',
    'flax': 'a flax ViT or ViViT tree (original ViT .npz, big_vision, '
            'scenic: Transformer/encoderblock_N/...)',
    'hf-4.x': "a HuggingFace ViViT in transformers 4.x names "
              "('vivit.encoder.layer.0.attention.attention.query.weight')",
    'hf-5.x': "a HuggingFace ViViT in transformers 5.x names "
              "('vivit.layers.0.attention.q_proj.weight')",
    'vivit_mm': 'a vivit_mm ViViT (layers.N.mlp.fc1)',
}
LAYOUTS = tuple(DESCRIPTIONS)


def find_layouts(keys: Iterable[str]) -> list:
    """Every layout some key of ``keys`` belongs to."""
    keys = list(keys)
    return [name for name, test in _PATTERNS.items()
            if any(test(k) for k in keys)]


def detect_layout(keys: Iterable[str],
                  expected: Sequence[str] = LAYOUTS,
                  what: str = 'checkpoint') -> str:
    """The one layout of ``keys`` among ``expected``.

    Args:
        keys: State-dict keys (flax trees: ``'/'``-joined paths).
        expected (Sequence[str]): The layouts the caller can use.
        what (str): What the keys are, for the message.

    Raises:
        ValueError: The keys match none of ``expected`` (or several): the
            message says what was expected, what the keys look like and,
            for a ViViT checkpoint given where an image ViT was expected,
            what to do instead.
    """
    keys = list(keys)
    found = find_layouts(keys)
    usable = [name for name in found if name in expected]
    if len(usable) == 1:
        return usable[0]
    wanted = '; or '.join(DESCRIPTIONS[name] for name in expected)
    if len(usable) > 1:
        raise ValueError(f'Cannot tell the layout of the {what}: its keys '
                         f'mix {usable}.')
    if 'vivit_mm' in found and 'vivit_mm' not in expected:
        raise ValueError(
            f'The {what} looks like a ViViT checkpoint (layers.*.mlp.fc1), '
            'not an image ViT: load it with load_from or init_cfg='
            "dict(type='Pretrained', ...) instead of inflating it.")
    seen = (f' It looks like {" and ".join(DESCRIPTIONS[n] for n in found)}.'
            if found else '')
    raise ValueError(f'Cannot tell the layout of the {what}: expected '
                     f'{wanted}.{seen} First keys: {sorted(keys)[:8]}.')


__all__ = ['LAYOUTS', 'DESCRIPTIONS', 'find_layouts', 'detect_layout']
