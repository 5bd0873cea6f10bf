"""flax parameter trees -> vivit_mm names and torch layouts: the one mapper
shared by image ViT inflation (original ViT ``.npz``, big_vision, scenic
ViT) and the official ViViT converter (scenic).

Layouts (flax -> torch):

* ``Dense``: kernel ``(in, out)`` -> ``weight`` ``(out, in)``;
* ``LayerNorm``: ``scale``/``bias`` -> ``weight``/``bias``;
* ``MultiHeadDotProductAttention``: ``query``/``key``/``value`` kernels
  ``(D, heads, head_dim)`` and biases ``(heads, head_dim)`` -> one fused
  ``qkv`` (rows ``[q; k; v]``); ``out`` kernel ``(heads, head_dim, D)`` ->
  ``proj``;
* ``embedding`` (the patch or tubelet Conv): kernel ``(h, w, C, D)`` or
  ``(t, h, w, C, D)`` -> ``(D, C, h, w)`` or ``(D, C, t, h, w)``.

Encoder blocks: numbered modules (``LayerNorm_0``,
``MultiHeadDotProductAttention_1``, ``LayerNorm_2``, ``MlpBlock_3`` in the
original ViT, ``..._0, ..._0, ..._1, ..._0`` in scenic) map in index order
to ``norm1``, ``attn``, ``norm2``, ``mlp``; scenic's Model 3 block
(``LayerNorm_space``, ``MultiHeadDotProductAttention_space``,
``LayerNorm_time``, ``MultiHeadDotProductAttention_time``, ``LayerNorm_mlp``,
``MlpBlock``) to ``norm1``, ``attn``, ``temporal_norm``, ``temporal_attn``,
``norm2``, ``mlp``.

Every mapped value is an :data:`Entry`: ``(source key, tensor)``, the
source key naming where it came from (for reports); ``{query,key,value}``
stands for the three fused kernels.
"""
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

Entry = Tuple[str, torch.Tensor]

# Model 3 (scenic EncoderFactorizedSelfAttentionBlock): named modules.
_NAMED = {('LayerNorm', 'space'): 'norm1',
          ('MultiHeadDotProductAttention', 'space'): 'attn',
          ('LayerNorm', 'time'): 'temporal_norm',
          ('MultiHeadDotProductAttention', 'time'): 'temporal_attn',
          ('LayerNorm', 'mlp'): 'norm2',
          ('MlpBlock', None): 'mlp'}
# Numbered modules, in index order.
_NUMBERED = {'LayerNorm': ('norm1', 'norm2'),
             'MultiHeadDotProductAttention': ('attn', ),
             'MlpBlock': ('mlp', )}
_MODULE = re.compile(r'([A-Za-z]+?)(?:_([A-Za-z0-9]+))?/(.+)')


def tensor(value: Any) -> torch.Tensor:
    """A float32 torch copy of a numpy array (or tensor)."""
    if torch.is_tensor(value):
        return value.detach().float().clone()
    return torch.tensor(np.asarray(value, dtype=np.float32))


class FlaxTree:
    """Flat ``'a/b/c' -> array`` parameters that remembers what was taken,
    so that names no mapping knows can be reported.

    Args:
        flat (Mapping[str, array]): The parameters.
        what (str): What they are, for messages (e.g. ``'Scenic Model 2
            checkpoint'``).
    """

    def __init__(self, flat: Mapping[str, Any], what: str) -> None:
        self.flat = dict(flat)
        self.what = what
        self.used: set = set()

    def has(self, key: str) -> bool:
        return key in self.flat

    def take(self, key: str) -> Entry:
        """``(key, tensor)``; ValueError when the parameter is missing."""
        if key not in self.flat:
            raise ValueError(f'{self.what} has no parameter {key!r}.')
        self.used.add(key)
        return key, tensor(self.flat[key])

    def leftover(self) -> List[str]:
        return sorted(set(self.flat) - self.used)


def dense(tree: FlaxTree, src: str, dst: str, out: Dict[str, Entry]) -> None:
    """A flax ``Dense`` at ``src`` -> ``{dst}.weight``, ``{dst}.bias``."""
    key, kernel = tree.take(f'{src}/kernel')  # (in, out)
    out[f'{dst}.weight'] = (key, kernel.t())
    out[f'{dst}.bias'] = tree.take(f'{src}/bias')


def layer_norm(tree: FlaxTree, src: str, dst: str,
               out: Dict[str, Entry]) -> None:
    """A flax ``LayerNorm`` -> ``{dst}.weight``, ``{dst}.bias``."""
    out[f'{dst}.weight'] = tree.take(f'{src}/scale')
    out[f'{dst}.bias'] = tree.take(f'{src}/bias')


def attention(tree: FlaxTree, src: str, dst: str,
              out: Dict[str, Entry]) -> int:
    """A flax ``MultiHeadDotProductAttention`` -> fused ``{dst}.qkv`` and
    ``{dst}.proj``; returns the number of heads."""
    names = ('query', 'key', 'value')
    kernels = [tree.take(f'{src}/{n}/kernel')[1] for n in names]
    D, heads, head_dim = kernels[0].shape  # each (D, heads, head_dim)
    label = f'{src}/{{query,key,value}}'
    out[f'{dst}.qkv.weight'] = (label + '/kernel', torch.cat(
        [k.reshape(D, heads * head_dim).t() for k in kernels], dim=0))
    biases = [f'{src}/{n}/bias' for n in names]
    present = [tree.has(b) for b in biases]
    if any(present):
        if not all(present):
            raise ValueError(f'{tree.what}: {src} has biases for only some of '
                             f'query/key/value.')
        out[f'{dst}.qkv.bias'] = (label + '/bias', torch.cat(
            [tree.take(b)[1].reshape(-1) for b in biases], dim=0))
    key, kernel = tree.take(f'{src}/out/kernel')  # (heads, head_dim, D)
    out[f'{dst}.proj.weight'] = (key, kernel.reshape(heads * head_dim,
                                                     -1).t())
    out[f'{dst}.proj.bias'] = tree.take(f'{src}/out/bias')
    return heads


def patch_embedding(tree: FlaxTree, src: str, dst: str,
                    out: Dict[str, Entry]) -> None:
    """The patch (``(h, w, C, D)``) or tubelet (``(t, h, w, C, D)``) Conv at
    ``src`` -> ``{dst}.weight`` ``(D, C[, t], h, w)`` and ``{dst}.bias``."""
    key, kernel = tree.take(f'{src}/kernel')
    if kernel.dim() == 5:  # (t, h, w, C, D) -> (D, C, t, h, w)
        weight = kernel.permute(4, 3, 0, 1, 2)
    elif kernel.dim() == 4:  # (h, w, C, D) -> (D, C, h, w)
        weight = kernel.permute(3, 2, 0, 1)
    else:
        raise ValueError(f'{tree.what}: {key} must be (t, h, w, C, D) or '
                         f'(h, w, C, D), got {tuple(kernel.shape)}.')
    out[f'{dst}.weight'] = (key, weight.contiguous())
    out[f'{dst}.bias'] = tree.take(f'{src}/bias')


def _block_modules(tree: FlaxTree, prefix: str) -> Dict[str, str]:
    """``{flax module path: our module name}`` of the block at ``prefix``."""
    found: Dict[Tuple[str, Optional[str]], str] = {}
    for key in tree.flat:
        m = key.startswith(prefix) and _MODULE.fullmatch(key[len(prefix):])
        if m:
            kind, tag = m.group(1), m.group(2)
            module = kind if tag is None else f'{kind}_{tag}'
            found[(kind, tag)] = prefix + module
    if found and all(k in _NAMED for k in found):
        return {path: _NAMED[k] for k, path in found.items()}
    by_kind: Dict[str, List[Tuple[int, str]]] = {}
    for (kind, tag), path in found.items():
        if kind not in _NUMBERED or tag is None or not tag.isdigit():
            raise ValueError(
                f'{tree.what}: {path} is not a pre-LN ViT block module '
                '(LayerNorm, MultiHeadDotProductAttention, MlpBlock); ViViT '
                'cannot represent it.')
        by_kind.setdefault(kind, []).append((int(tag), path))
    modules = {}
    for kind, ours in _NUMBERED.items():
        paths = [p for _, p in sorted(by_kind.get(kind, []))]
        if len(paths) != len(ours):
            raise ValueError(
                f'{tree.what}: block {prefix.rstrip("/")} has {len(paths)} '
                f'{kind} modules, a pre-LN ViT block has {len(ours)} '
                f'(found {sorted(found.values())}).')
        modules.update(zip(paths, ours))
    return modules


def encoder(tree: FlaxTree, src: str, dst: str,
            out: Dict[str, Entry]) -> Tuple[int, int, int]:
    """One flax transformer ``Encoder`` at ``src`` (e.g.
    ``'Transformer'``, ``'SpatialTransformer'``) -> ``{dst}pos_embed``,
    ``{dst}layers.{i}.*`` and ``{dst}norm.*``.

    Returns:
        tuple: ``(num_layers, num_heads, feedforward_channels)``.
    """
    if not tree.has(f'{src}/posembed_input/pos_embedding'):
        raise ValueError(
            f'{tree.what}: {src} has no posembed_input/pos_embedding: only '
            "learned ('learned_1d') position embeddings are supported, not "
            'sinusoidal or none.')
    out[f'{dst}pos_embed'] = tree.take(f'{src}/posembed_input/pos_embedding')
    pattern = re.compile(re.escape(src) + r'/encoderblock_(\d+)/')
    ids = sorted({int(m.group(1)) for k in tree.flat
                  for m in [pattern.match(k)] if m})
    if not ids or ids != list(range(len(ids))):
        raise ValueError(f'{tree.what}: {src} blocks are not '
                         f'encoderblock_0..n-1: {ids}.')
    heads = ffn = 0
    for i in ids:
        block = f'{src}/encoderblock_{i}/'
        for path, ours in _block_modules(tree, block).items():
            name = f'{dst}layers.{i}.{ours}'
            if ours.endswith('attn'):
                heads = attention(tree, path, name, out)
            elif ours.endswith('norm') or ours in ('norm1', 'norm2'):
                layer_norm(tree, path, name, out)
            else:
                dense(tree, f'{path}/Dense_0', f'{name}.fc1', out)
                dense(tree, f'{path}/Dense_1', f'{name}.fc2', out)
                ffn = out[f'{name}.fc1.weight'][1].shape[0]
        left = [k for k in tree.flat
                if k.startswith(block) and k not in tree.used]
        if left:
            raise ValueError(f'{tree.what} has block parameters ViViT '
                             f'cannot represent: {left[:8]}.')
    layer_norm(tree, f'{src}/encoder_norm', f'{dst}norm', out)
    return len(ids), heads, ffn


__all__ = ['Entry', 'FlaxTree', 'tensor', 'dense', 'layer_norm',
           'attention', 'patch_embedding', 'encoder']
