"""Image ViT checkpoints (mmpretrain, timm, flax) -> canonical names.

The canonical names are a ViViT backbone's own, for the image ViT's
parameters: ``patch_embed.projection.{weight,bias}`` (a 2D filter
``(D, C, p, p)``), ``cls_token``, ``pos_embed`` (``[1, (1 +) h*w, D]``),
``layers.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}``
and ``norm.{weight,bias}``. :mod:`vivit_mm.inflation` maps them onto the
four variants (paper section 3.4).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch

from . import flax
from .flax import Entry
from .layouts import detect_layout

#: The layouts an image ViT checkpoint may have.
IMAGE_LAYOUTS = ('mmpretrain', 'timm', 'flax')

# (source module, canonical module) per layout; ``{i}`` is a block index.
# Each maps the module's ``weight`` and ``bias``.
_MODULES = {
    'mmpretrain': [
        ('patch_embed.projection', 'patch_embed.projection'),
        ('layers.{i}.ln1', 'layers.{i}.norm1'),
        ('layers.{i}.attn.qkv', 'layers.{i}.attn.qkv'),
        ('layers.{i}.attn.proj', 'layers.{i}.attn.proj'),
        ('layers.{i}.ln2', 'layers.{i}.norm2'),
        ('layers.{i}.ffn.layers.0.0', 'layers.{i}.mlp.fc1'),
        ('layers.{i}.ffn.layers.1', 'layers.{i}.mlp.fc2'),
        ('ln1', 'norm'),
    ],
    'timm': [
        ('patch_embed.proj', 'patch_embed.projection'),
        ('blocks.{i}.norm1', 'layers.{i}.norm1'),
        ('blocks.{i}.attn.qkv', 'layers.{i}.attn.qkv'),
        ('blocks.{i}.attn.proj', 'layers.{i}.attn.proj'),
        ('blocks.{i}.norm2', 'layers.{i}.norm2'),
        ('blocks.{i}.mlp.fc1', 'layers.{i}.mlp.fc1'),
        ('blocks.{i}.mlp.fc2', 'layers.{i}.mlp.fc2'),
        ('norm', 'norm'),
    ],
}


def _rule(source: str, canonical: str) -> Tuple[str, str]:
    """``(regex, replacement)`` for one module's weight and bias."""
    pattern = re.escape(source).replace(r'\{i\}', r'(?P<i>\d+)')
    return (pattern + r'\.(?P<p>weight|bias)',
            canonical.replace('{i}', r'\g<i>') + r'.\g<p>')


_RULES = {layout: [_rule(*m) for m in modules] +
          [(r'(cls_token|pos_embed)', r'\1')]
          for layout, modules in _MODULES.items()}
# Blocks of each layout: a key inside a block that no rule maps changes what
# the block computes (layer scale, q/k norm, SwiGLU ...), so it is an error.
_BLOCK_PREFIX = {'mmpretrain': r'layers\.\d+\.', 'timm': r'blocks\.\d+\.'}
# Top-level keys that change the image model's function and have no place in
# ViViT.
_UNSUPPORTED = {
    'mmpretrain': {r'pre_norm\.': 'a LayerNorm before the blocks '
                                  '(pre_norm=True, CLIP-style)',
                   r'patch_embed\.norm\.': 'a norm in the patch embedding'},
    'timm': {r'norm_pre\.': 'a LayerNorm before the blocks (CLIP-style)',
             r'reg_token': 'register tokens',
             r'patch_embed\.norm\.': 'a norm in the patch embedding'},
}
#: Why an image checkpoint key is not used, by pattern.
UNUSED_NOTES = {
    r'(backbone\.)?(head|neck|data_preprocessor|pre_logits)\b'
    r'|(cls_head|fc_cls)\b':
    'the classifier head is never taken from the image model',
    r'fc_norm\.': "timm's norm after average pooling; ViViT normalises "
                  'before pooling, so its final norm keeps its init',
    r'ln2\.': "mmpretrain's norm after average pooling (out_type="
              "'avg_featmap'); ViViT normalises before pooling",
}


def to_canonical(state_dict: Dict[str, torch.Tensor]
                 ) -> Tuple[str, Dict[str, Entry], List[str]]:
    """Map an image ViT state dict to canonical names.

    Returns:
        tuple: ``(layout, {canonical key: (source key, tensor)}, unmapped
        source keys)``.

    Raises:
        ValueError: Unknown layout, or keys that change what the image
            model computes and have no place in ViViT (layer scale, a
            pre-norm, q/k norms ...).
    """
    layout = detect_layout(list(state_dict), IMAGE_LAYOUTS,
                           'image ViT checkpoint')
    if layout == 'flax':
        canon, unmapped = _flax_to_canonical(state_dict)
        return layout, canon, unmapped
    prefix = ''
    if layout == 'mmpretrain' and any(k.startswith('backbone.')
                                      for k in state_dict):
        prefix = 'backbone.'
    canon: Dict[str, Entry] = OrderedDict()
    unmapped, unsupported = [], []
    for src, value in state_dict.items():
        if not src.startswith(prefix):
            unmapped.append(src)
            continue
        key = src[len(prefix):]
        for pattern, repl in _RULES[layout]:
            if re.fullmatch(pattern, key):
                canon[re.sub(pattern, repl, key)] = (src, value)
                break
        else:
            reasons = [r for p, r in _UNSUPPORTED[layout].items()
                       if re.match(p, key)]
            if re.match(_BLOCK_PREFIX[layout], key):
                reasons.append('a parameter ViViT blocks do not have')
            if reasons:
                unsupported.append(f'{src} ({reasons[0]})')
            else:
                unmapped.append(src)
    if unsupported:
        raise ValueError(
            f'The {layout} checkpoint holds parameters ViViT cannot '
            f'represent, so the inflated model would not compute what the '
            f'image model does: {unsupported}.')
    bad = [s for s, v in canon.values() if not torch.is_tensor(v)]
    if bad:
        raise ValueError(f'Checkpoint entries {bad} are not tensors.')
    return layout, canon, unmapped


def _flax_to_canonical(state_dict) -> Tuple[Dict[str, Entry], List[str]]:
    """The original ViT / scenic / big_vision parameter tree (``/``-joined
    keys, as in the released ``.npz`` files), under any prefix such as
    ``opt/target/`` or ``params/``."""
    first = next(k for k in state_dict if 'Transformer/encoderblock_' in k)
    prefix = first[:first.index('Transformer/encoderblock_')]
    tree = flax.FlaxTree(state_dict, 'The flax checkpoint')
    canon: Dict[str, Entry] = OrderedDict()
    if tree.has(prefix + 'embedding/kernel'):
        flax.patch_embedding(tree, prefix + 'embedding',
                             'patch_embed.projection', canon)
    if tree.has(prefix + 'cls'):
        canon['cls_token'] = tree.take(prefix + 'cls')
    flax.encoder(tree, prefix + 'Transformer', '', canon)
    left = tree.leftover()
    unsupported = [k for k in left
                   if k.startswith(prefix) and k[len(prefix):].startswith(
                       ('Transformer/', 'embedding/'))]
    if unsupported:
        raise ValueError(
            'The flax checkpoint holds parameters ViViT cannot represent '
            '(only pre-LN ViT blocks LayerNorm/MultiHeadDotProductAttention/'
            f'LayerNorm/MlpBlock are supported): {unsupported}.')
    return canon, left





#: ImageNet-21k image ViTs that ViViTInitHook takes, by ``embed_dims``:
#: ``(name, layout, where to get it)``. The paper starts from the original
#: ViT's ImageNet-21k weights (section 3.4); any of these inflates.
IMAGE_VITS = {
    768: [('ViT-B/16, original ImageNet-21k (the paper\'s start)', 'flax',
           'wget https://storage.googleapis.com/vit_models/imagenet21k/'
           'ViT-B_16.npz -P checkpoints/'),
          ('timm vit_base_patch16_224.orig_in21k (the same weights)', 'timm',
           'huggingface-cli download timm/vit_base_patch16_224.orig_in21k '
           'model.safetensors --local-dir checkpoints/'
           'vit_base_patch16_224.orig_in21k'),
          ('mmpretrain vit-base-p16_in21k-pre_3rdparty_in1k-384px '
           '(ImageNet-21k, fine-tuned on 1k at 384)', 'mmpretrain',
           'wget https://download.openmmlab.com/mmclassification/v0/vit/'
           'finetune/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_'
           '20210928-98e8652b.pth -P checkpoints/')],
    1024: [('ViT-L/16, original ImageNet-21k (the paper\'s start)', 'flax',
            'wget https://storage.googleapis.com/vit_models/imagenet21k/'
            'ViT-L_16.npz -P checkpoints/'),
           ('timm vit_large_patch16_224.orig_in21k (the same weights)',
            'timm', 'huggingface-cli download '
            'timm/vit_large_patch16_224.orig_in21k model.safetensors '
            '--local-dir checkpoints/vit_large_patch16_224.orig_in21k'),
           ('mmpretrain vit-large-p16_in21k-pre_3rdparty_in1k-384px '
            '(ImageNet-21k, fine-tuned on 1k at 384)', 'mmpretrain',
            'wget https://download.openmmlab.com/mmclassification/v0/vit/'
            'finetune/vit-large-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_'
            '20210928-b20ba619.pth -P checkpoints/')],
}


def where_to_get(embed_dims: int, patch_size=16) -> str:
    """Which image ViTs a backbone of this width (and patch size) can start
    from, and the command that downloads each, for error messages."""
    found = IMAGE_VITS.get(embed_dims) if patch_size in (16, (16, 16)) \
        else None
    if not found:
        return (f'Any ImageNet image ViT with embed_dims={embed_dims} and '
                f'patch {patch_size} in mmpretrain, timm or flax (.npz) '
                'layout inflates.')
    lines = [f'Compatible image ViTs (embed_dims={embed_dims}, patch 16), '
             'any of these layouts: ']
    lines += [f'{name} [{layout}]: `{command}`'
              for name, layout, command in found]
    return ' '.join(lines[:1]) + '; '.join(lines[1:]) + '.'
__all__ = ['IMAGE_LAYOUTS', 'UNUSED_NOTES', 'IMAGE_VITS', 'to_canonical',
           'where_to_get']
