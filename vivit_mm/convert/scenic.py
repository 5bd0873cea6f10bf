"""Official ViViT checkpoints (google-research/scenic, flax) -> vivit_mm.

Parameter names follow ``scenic/projects/vivit/model.py``:

* tokeniser ``embedding/{kernel,bias}``: a Conv over ``(t, h, w)`` with
  kernel ``(t, h, w, C, D)`` (tubelets), or ``(h, w, C, D)`` for uniform
  frame sampling;
* Models 1, 3, 4 (class ``ViViT``): ``cls`` (only with the token
  classifier), ``Transformer/posembed_input/pos_embedding``,
  ``Transformer/encoderblock_{i}/...``, ``Transformer/encoder_norm``;
* Model 2 (class ``SpaceTimeViViT``): ``cls_SpatialTransformer``,
  ``SpatialTransformer/...``, ``cls_TemporalTransformer``,
  ``TemporalTransformer/...`` (absent in the average-pool baseline);
* ``output_projection/{kernel,bias}``; a ``pre_logits`` Dense exists only
  with ``representation_size`` and is not supported.

Blocks: Models 1 and 4 use ``LayerNorm_0``, ``MultiHeadDotProductAttention_0``
(``query``/``key``/``value`` kernels ``(D, heads, head_dim)``, biases
``(heads, head_dim)``, ``out`` kernel ``(heads, head_dim, D)``),
``LayerNorm_1``, ``MlpBlock_0/Dense_{0,1}``. Model 3
(``EncoderFactorizedSelfAttentionBlock``) uses ``LayerNorm_{space,time}``,
``MultiHeadDotProductAttention_{space,time}``, ``LayerNorm_mlp`` and
``MlpBlock/Dense_{0,1}``. Model 4 has exactly Model 1's parameters (its
heads are split in the attention function: first half temporal, second half
spatial), so a tree without ``cls`` is Model 1 with average pooling or
Model 4, and the caller has to say which.
"""
import os
import re
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .flax_io import load_flax_arrays
from .recognizer import arch_name

#: Where the parameters sit inside a checkpoint, most specific first.
PARAM_ROOTS = ('optimizer/target/params/', 'optimizer/target/', 'params/',
               'target/', '')
MODELS = (1, 2, 3, 4)
_M1_BLOCK = {'LayerNorm_0': 'norm1', 'MultiHeadDotProductAttention_0': 'attn',
             'LayerNorm_1': 'norm2', 'MlpBlock_0/Dense_0': 'mlp.fc1',
             'MlpBlock_0/Dense_1': 'mlp.fc2'}
_M3_BLOCK = {'LayerNorm_space': 'norm1',
             'MultiHeadDotProductAttention_space': 'attn',
             'LayerNorm_time': 'temporal_norm',
             'MultiHeadDotProductAttention_time': 'temporal_attn',
             'LayerNorm_mlp': 'norm2', 'MlpBlock/Dense_0': 'mlp.fc1',
             'MlpBlock/Dense_1': 'mlp.fc2'}


class _Tree:
    """Flat ``'a/b/c' -> array`` parameters; remembers what was taken so
    that leftovers (names this converter does not know) are reported."""

    def __init__(self, flat: Dict[str, np.ndarray], model: int) -> None:
        self.flat, self.used, self.model = flat, set(), model

    def has(self, key: str) -> bool:
        return key in self.flat

    def take(self, key: str) -> torch.Tensor:
        if key not in self.flat:
            raise ValueError(f'Scenic Model {self.model} checkpoint has no '
                             f'parameter {key!r}.')
        self.used.add(key)
        return torch.tensor(np.asarray(self.flat[key], dtype=np.float32))

    def leftover(self):
        return sorted(set(self.flat) - self.used)


# ------------------------------------------------------------ parameters
def find_params(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The model parameters of a checkpoint's arrays (a scenic TrainState
    keeps them under ``optimizer/target`` or ``params``), with that prefix
    removed."""
    roots = [r for r in PARAM_ROOTS if r + 'embedding/kernel' in arrays]
    if not roots:
        raise ValueError(
            "No 'embedding/kernel' parameter found (looked under "
            f'{[r or "<root>" for r in PARAM_ROOTS]}): not a ViViT '
            f'parameter tree. First keys: {sorted(arrays)[:5]}.')
    root = roots[0]
    return {k[len(root):]: v for k, v in arrays.items()
            if k.startswith(root)}


def detect_scenic_model(params: Dict[str, np.ndarray]) -> Optional[int]:
    """1, 2 or 3 from the parameter names; 1 for a Model 1/4 tree with a
    ``cls`` token (Model 4 has none); None when the tree is Model 1 with
    average pooling or Model 4 (identical parameters).

    Raises:
        ValueError: No known ViViT layout.
    """
    if any(k.startswith('SpatialTransformer/') for k in params):
        return 2
    if any('/MultiHeadDotProductAttention_space/' in k for k in params):
        return 3
    if any('/MultiHeadDotProductAttention_0/' in k for k in params):
        return 1 if 'cls' in params else None
    raise ValueError(
        'Unknown scenic ViViT layout: expected Transformer/encoderblock_0/'
        'MultiHeadDotProductAttention_0 (Models 1, 4), '
        'MultiHeadDotProductAttention_space (Model 3) or SpatialTransformer '
        f'(Model 2); got e.g. {sorted(params)[:6]}.')


def _linear(tree: _Tree, src: str, dst: str, out: dict) -> None:
    out[f'{dst}.weight'] = tree.take(f'{src}/kernel').t()
    out[f'{dst}.bias'] = tree.take(f'{src}/bias')


def _layer_norm(tree: _Tree, src: str, dst: str, out: dict) -> None:
    out[f'{dst}.weight'] = tree.take(f'{src}/scale')
    out[f'{dst}.bias'] = tree.take(f'{src}/bias')


def _attention(tree: _Tree, src: str, dst: str, out: dict) -> int:
    """flax MultiHeadDotProductAttention -> fused qkv + proj; returns the
    number of heads."""
    kernels = [tree.take(f'{src}/{n}/kernel') for n in
               ('query', 'key', 'value')]  # (D, heads, head_dim) each
    D, heads, head_dim = kernels[0].shape
    out[f'{dst}.qkv.weight'] = torch.cat(
        [k.reshape(D, heads * head_dim).t() for k in kernels], dim=0)
    biases = [f'{src}/{n}/bias' for n in ('query', 'key', 'value')]
    if any(tree.has(b) for b in biases):
        out[f'{dst}.qkv.bias'] = torch.cat(
            [tree.take(b).reshape(-1) for b in biases], dim=0)
    kernel = tree.take(f'{src}/out/kernel')  # (heads, head_dim, D)
    out[f'{dst}.proj.weight'] = kernel.reshape(heads * head_dim, -1).t()
    out[f'{dst}.proj.bias'] = tree.take(f'{src}/out/bias')
    return heads


def _encoder(tree: _Tree, src: str, dst: Tuple[str, str, str],
             block: Dict[str, str], out: dict) -> Tuple[int, int, int]:
    """One scenic ``Encoder`` -> (layers, pos embed, norm) with the ``dst``
    names; returns ``(num_layers, num_heads, feedforward_channels)``."""
    layers_dst, pos_dst, norm_dst = dst
    if not tree.has(f'{src}/posembed_input/pos_embedding'):
        raise ValueError(
            f'{src} has no posembed_input/pos_embedding: only learned '
            "('learned_1d') position embeddings are supported, not "
            'sinusoidal or none.')
    out[pos_dst] = tree.take(f'{src}/posembed_input/pos_embedding')
    pattern = re.compile(re.escape(src) + r'/encoderblock_(\d+)/')
    ids = sorted({int(m.group(1)) for k in tree.flat
                  for m in [pattern.match(k)] if m})
    if ids != list(range(len(ids))) or not ids:
        raise ValueError(f'{src} blocks are not encoderblock_0..n-1: {ids}.')
    heads = ffn = None
    for i in ids:
        for theirs, ours in block.items():
            s = f'{src}/encoderblock_{i}/{theirs}'
            d = f'{layers_dst}{i}.{ours}'
            if 'Attention' in theirs:
                heads = _attention(tree, s, d, out)
            elif 'LayerNorm' in theirs:
                _layer_norm(tree, s, d, out)
            else:
                _linear(tree, s, d, out)
        ffn = out[f'{layers_dst}{i}.mlp.fc1.weight'].shape[0]
    _layer_norm(tree, f'{src}/encoder_norm', norm_dst, out)
    return len(ids), heads, ffn


# ------------------------------------------------------------ token grid
def _grid(num_tokens: int, patch: Tuple[int, int], t: int,
          img_size: Optional[Union[int, Sequence[int]]],
          num_frames: Optional[int]) -> Tuple[Union[int, tuple], int]:
    """``(img_size, num_frames)`` whose ``n_t * n_h * n_w`` is
    ``num_tokens`` (the position table of Models 1, 3, 4)."""
    if img_size is None and num_frames is None:
        img_size = 224
    if img_size is not None:
        h, w = (img_size, img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        n_s = (h // patch[0]) * (w // patch[1])
        if h % patch[0] or w % patch[1] or num_tokens % n_s:
            raise ValueError(
                f'Config/weights mismatch: the position table has '
                f'{num_tokens} tokens, which is not a whole number of frames '
                f'of {n_s} tokens for img_size {img_size} and patch {patch}; '
                'pass the img_size the model was trained at.')
        frames = num_tokens // n_s * t
        if num_frames is not None and num_frames != frames:
            raise ValueError(
                f'Config/weights mismatch: num_frames={num_frames} with '
                f'img_size {img_size} needs {num_frames // t * n_s} tokens, '
                f'the position table has {num_tokens}.')
        return img_size, frames
    n_t = num_frames // t
    side = int(round((num_tokens // max(n_t, 1))**0.5))
    if num_frames % t or n_t * side * side != num_tokens:
        raise ValueError(
            f'Config/weights mismatch: {num_tokens} position tokens are not '
            f'{n_t} frames of a square token grid (num_frames={num_frames}, '
            f'tubelet {t}); pass img_size.')
    return side * patch[0] if patch[0] == patch[1] else \
        (side * patch[0], side * patch[1]), num_frames


# -------------------------------------------------------------- mapping
def scenic_to_vivit(params: Dict[str, np.ndarray],
                    model: Optional[int] = None,
                    img_size: Optional[Union[int, Sequence[int]]] = None,
                    num_frames: Optional[int] = None,
                    attention_order: str = 'time_space'
                    ) -> Tuple[Dict[str, torch.Tensor], dict, int]:
    """Map a scenic ViViT parameter tree to a vivit_mm recognizer.

    Args:
        params (dict): Flat ``'/'``-joined parameters (see
            :func:`find_params`).
        model (int, optional): 1-4. Detected when the tree tells (Models 2
            and 3, Model 1 with a CLS token); required for a tree without
            ``cls`` that has Model 1/4 blocks. If given, it is checked.
        img_size (int | tuple, optional): Frame size the model was trained
            at. Models 1, 3, 4 store only the total token count, so one of
            ``img_size``/``num_frames`` is needed (``img_size`` defaults to
            224). Model 2 stores both grids; values given are checked.
        num_frames (int, optional): Input frames; see ``img_size``. For the
            Model 2 average-pool baseline it defaults to 32.
        attention_order (str): Model 3 only; ``'time_space'`` (scenic's
            default) or ``'space_time'``. Not stored in checkpoints.

    Returns:
        tuple: ``(state_dict, backbone_cfg, num_classes)``; the state dict
        has ``backbone.*`` and ``cls_head.*`` keys.

    Raises:
        ValueError: Unknown layout, an ambiguous or contradicted ``model``,
            a parameter missing or unknown, or sizes that contradict the
            weights.
    """
    detected = detect_scenic_model(params)
    if model is not None and model not in MODELS:
        raise ValueError(f'model must be one of {MODELS}, got {model!r}.')
    if detected is None:
        if model not in (1, 4):
            raise ValueError(
                'This tree has Model 1/4 blocks and no CLS token: it is Model '
                '1 with average pooling or Model 4 (factorised dot-product '
                'attention), which have identical parameters. Say which with '
                'model=1 or model=4 (--model on the command line).')
        detected = model
    elif model is not None and model != detected:
        raise ValueError(
            f'model={model} was given, but the parameter names are those of '
            f'Model {detected}' + (" (Model 4 has no CLS token, this tree has "
                                   "'cls')" if model == 4 else '') + '.')
    if params.get('pre_logits/kernel') is not None:
        raise ValueError(
            "The tree has a 'pre_logits' layer (representation_size set); "
            'ViViTHead has no such layer, so it is not supported.')
    tree = _Tree(params, detected)
    out: Dict[str, torch.Tensor] = {}

    kernel = tree.take('embedding/kernel')
    if kernel.dim() == 5:  # (t, h, w, C, D) -> (D, C, t, h, w)
        out['backbone.patch_embed.projection.weight'] = kernel.permute(
            4, 3, 0, 1, 2).contiguous()
        t, ph, pw, in_ch, D = kernel.shape
        tokenizer = 'tubelet'
    elif kernel.dim() == 4:  # uniform frame sampling: (h, w, C, D)
        out['backbone.patch_embed.projection.weight'] = kernel.permute(
            3, 2, 0, 1).contiguous()
        (ph, pw, in_ch, D), t, tokenizer = kernel.shape, 1, 'uniform'
    else:
        raise ValueError('embedding/kernel must be (t, h, w, C, D) or '
                         f'(h, w, C, D), got {tuple(kernel.shape)}.')
    out['backbone.patch_embed.projection.bias'] = tree.take('embedding/bias')
    patch = (ph, pw)

    backbone = dict(type=f'ViViTM{detected}')
    if detected == 2:
        arch, img_size, num_frames, token = _model2(
            tree, out, patch, t, img_size, num_frames)
        backbone['num_temporal_layers'] = arch.pop('num_temporal_layers')
    else:
        token = tree.has('cls')
        if token:
            out['backbone.cls_token'] = tree.take('cls')
        block = _M3_BLOCK if detected == 3 else _M1_BLOCK
        layers, heads, ffn = _encoder(
            tree, 'Transformer', ('backbone.layers.', 'backbone.pos_embed',
                                  'backbone.norm'), block, out)
        arch = dict(embed_dims=D, num_layers=layers, num_heads=heads,
                    feedforward_channels=ffn)
        img_size, num_frames = _grid(
            out['backbone.pos_embed'].shape[1] - int(token), patch, t,
            img_size, num_frames)
    if detected == 3:
        if attention_order not in ('time_space', 'space_time'):
            raise ValueError("attention_order must be 'time_space' or "
                             f"'space_time', got {attention_order!r}.")
        backbone['attention_order'] = attention_order
    _linear(tree, 'output_projection', 'cls_head.fc_cls', out)
    left = tree.leftover()
    if left:
        raise ValueError(f'Scenic Model {detected} tree has parameters this '
                         f'converter does not know: {left[:8]}.')
    backbone.update(
        arch=arch_name(arch), img_size=img_size, num_frames=num_frames,
        patch_size=ph if ph == pw else [ph, pw], tubelet_size=t,
        tokenizer=tokenizer, in_channels=in_ch,
        pooling='token' if token else 'gap', qkv_bias=True,
        act_cfg=dict(type='GELU', approximate='tanh'),
        norm_cfg=dict(type='LN', eps=1e-6))
    num_classes = out['cls_head.fc_cls.weight'].shape[0]
    return out, backbone, num_classes


def _model2(tree: _Tree, out: dict, patch, t, img_size, num_frames):
    """Factorised encoder: spatial + temporal encoders and their CLS."""
    token = tree.has('cls_SpatialTransformer')
    if token:
        out['backbone.cls_token'] = tree.take('cls_SpatialTransformer')
    layers, heads, ffn = _encoder(
        tree, 'SpatialTransformer',
        ('backbone.layers.', 'backbone.pos_embed', 'backbone.norm'),
        _M1_BLOCK, out)
    n_s = out['backbone.pos_embed'].shape[1] - int(token)
    side = int(round(n_s**0.5))
    if img_size is None:
        if side * side != n_s or patch[0] != patch[1]:
            raise ValueError(f'{n_s} spatial tokens are not a square grid; '
                             'pass img_size.')
        img_size = side * patch[0]
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    if (h // patch[0]) * (w // patch[1]) != n_s:
        raise ValueError(
            f'Config/weights mismatch: img_size {img_size} with patch {patch} '
            f'gives {(h // patch[0]) * (w // patch[1])} spatial tokens, the '
            f'spatial position table has {n_s}.')
    temporal_layers = 0
    if any(k.startswith('TemporalTransformer/') for k in tree.flat):
        if tree.has('cls_TemporalTransformer') != token:
            raise ValueError('Only one of the spatial and temporal encoders '
                             'has a CLS token; vivit_mm uses one pooling for '
                             'both.')
        if token:
            out['backbone.temporal_cls_token'] = tree.take(
                'cls_TemporalTransformer')
        temporal_layers, t_heads, t_ffn = _encoder(
            tree, 'TemporalTransformer',
            ('backbone.temporal_layers.', 'backbone.temporal_pos_embed',
             'backbone.temporal_norm'), _M1_BLOCK, out)
        if (t_heads, t_ffn) != (heads, ffn):
            raise ValueError(
                f'The temporal encoder (heads {t_heads}, mlp {t_ffn}) differs '
                f'from the spatial one (heads {heads}, mlp {ffn}); ViViTM2 '
                'uses one width for both.')
        n_t = out['backbone.temporal_pos_embed'].shape[1] - int(token)
        if num_frames is not None and num_frames != n_t * t:
            raise ValueError(
                f'Config/weights mismatch: num_frames={num_frames} with '
                f'tubelet {t} gives {num_frames // t} temporal tokens, the '
                f'temporal position table has {n_t}.')
        num_frames = n_t * t
    elif num_frames is None:
        num_frames = 32
    arch = dict(embed_dims=out['backbone.pos_embed'].shape[-1],
                num_layers=layers, num_heads=heads, feedforward_channels=ffn,
                num_temporal_layers=temporal_layers)
    return arch, img_size, num_frames, token


# ------------------------------------------------------------------ files
def convert_scenic_checkpoint(src: str,
                              out_checkpoint: str,
                              out_config: str,
                              model: Optional[int] = None,
                              img_size=None,
                              num_frames: Optional[int] = None,
                              attention_order: str = 'time_space',
                              label_names: Optional[Sequence[str]] = None,
                              **config_kwargs) -> dict:
    """Convert an official checkpoint file (flax msgpack or ``.npz``) into
    an MMAction2 checkpoint and config; see :func:`scenic_to_vivit` and
    :func:`vivit_mm.convert.recognizer_config` for the options.

    Returns:
        dict: The config written.
    """
    from .recognizer import (check_against_config, recognizer_config,
                             save_checkpoint, write_config)
    params = find_params(load_flax_arrays(src))
    sd, backbone, num_classes = scenic_to_vivit(
        params, model=model, img_size=img_size, num_frames=num_frames,
        attention_order=attention_order)
    cfg = recognizer_config(backbone, num_classes, label_names=label_names,
                            **config_kwargs)
    check_against_config(sd, cfg['model'], f'the weights in {src!r}')
    meta = dict(converted_from='scenic', source=os.path.abspath(src),
                scenic_model=int(backbone['type'][-1]))
    if label_names:
        meta['dataset_meta'] = dict(classes=list(label_names))
    save_checkpoint(sd, out_checkpoint, meta)
    write_config(cfg, out_config,
                 header=f'ViViT Model {backbone["type"][-1]} converted from '
                 f'the official checkpoint {os.path.basename(src)!r} by '
                 'vivit_mm.convert (tools/convert/scenic_to_vivit.py).')
    return cfg
