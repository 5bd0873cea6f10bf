"""HuggingFace ``VivitForVideoClassification`` <-> vivit_mm Model 1.

HuggingFace hosts only Model 1 (spatio-temporal attention): Conv3d tubelets,
a CLS token, one learned position table, pre-LN blocks, a final LayerNorm and
a linear classifier on the CLS token -- exactly ``ViViTM1`` with
``pooling='token'`` plus ``ViViTHead``. Only names and the q/k/v layout
differ: HuggingFace has separate ``q``/``k``/``v`` projections, we have one
fused ``attn.qkv`` (rows ``[q; k; v]``).

Two HuggingFace key layouts exist and both are read:

* transformers 4.x: ``vivit.encoder.layer.{i}.attention.attention.{query,
  key,value}``, ``...attention.output.dense``, ``...intermediate.dense``,
  ``...output.dense``, ``...layernorm_{before,after}``;
* transformers 5.x: ``vivit.layers.{i}.attention.{q,k,v,o}_proj``,
  ``vivit.layers.{i}.mlp.{fc1,fc2}``, ``vivit.layers.{i}.layernorm_{before,
  after}``.

Embeddings (``vivit.embeddings.*``), the final ``vivit.layernorm`` and the
``classifier`` are named alike in both. Nothing here imports transformers.
"""
import json
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from ..models.backbones.base import BaseViViT
from ..utils import checks
from ..utils.build import build_model
from .io import safe_load
from .layouts import detect_layout
from .recognizer import label_names_from_id2label

LAYOUTS = ('4.x', '5.x')

# Per-block names: ours -> HuggingFace, by layout. q/k/v are fused apart.
_BLOCK_KEYS = {
    '4.x': {
        'norm1': 'layernorm_before',
        'attn.proj': 'attention.output.dense',
        'norm2': 'layernorm_after',
        'mlp.fc1': 'intermediate.dense',
        'mlp.fc2': 'output.dense',
    },
    '5.x': {
        'norm1': 'layernorm_before',
        'attn.proj': 'attention.o_proj',
        'norm2': 'layernorm_after',
        'mlp.fc1': 'mlp.fc1',
        'mlp.fc2': 'mlp.fc2',
    },
}
_QKV_KEYS = {
    '4.x': ('attention.attention.query', 'attention.attention.key',
            'attention.attention.value'),
    '5.x': ('attention.q_proj', 'attention.k_proj', 'attention.v_proj'),
}
_BLOCK_PREFIX = {'4.x': 'vivit.encoder.layer.{}.', '5.x': 'vivit.layers.{}.'}
# Tensors outside the blocks: ours -> HuggingFace (both layouts).
_GLOBAL_KEYS = {
    'backbone.cls_token': 'vivit.embeddings.cls_token',
    'backbone.pos_embed': 'vivit.embeddings.position_embeddings',
    'backbone.patch_embed.projection.weight':
    'vivit.embeddings.patch_embeddings.projection.weight',
    'backbone.patch_embed.projection.bias':
    'vivit.embeddings.patch_embeddings.projection.bias',
    'backbone.norm.weight': 'vivit.layernorm.weight',
    'backbone.norm.bias': 'vivit.layernorm.bias',
    'cls_head.fc_cls.weight': 'classifier.weight',
    'cls_head.fc_cls.bias': 'classifier.bias',
}
# HuggingFace ``hidden_act`` -> mmcv activation config.
HF_ACTIVATIONS = {
    'gelu': dict(type='GELU', approximate='none'),
    'gelu_fast': dict(type='GELU', approximate='tanh'),
    'gelu_new': dict(type='GELU', approximate='tanh'),
    'gelu_pytorch_tanh': dict(type='GELU', approximate='tanh'),
    'relu': dict(type='ReLU'),
    'silu': dict(type='SiLU'),
    'swish': dict(type='SiLU'),
}


# ------------------------------------------------------------ state dicts
def detect_hf_layout(keys) -> str:
    """``'4.x'`` or ``'5.x'``: which transformers version's key names a
    HuggingFace ViViT state dict uses (see :mod:`vivit_mm.convert.layouts`).

    Raises:
        ValueError: Neither (or both) layouts are recognised.
    """
    layout = detect_layout(keys, ('hf-4.x', 'hf-5.x'),
                           'HuggingFace ViViT checkpoint')
    return layout[len('hf-'):]


def _num_layers(keys, layout: str) -> int:
    pattern = re.compile(re.escape(_BLOCK_PREFIX[layout].split('{}')[0]) +
                         r'(\d+)\.')
    ids = {int(m.group(1)) for k in keys for m in [pattern.match(k)] if m}
    if ids != set(range(len(ids))):
        raise ValueError(f'HuggingFace blocks are not numbered 0..n-1: '
                         f'{sorted(ids)}.')
    return len(ids)


def hf_to_vivit_state_dict(
        hf_state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a HuggingFace ``VivitForVideoClassification`` state dict (either
    layout) to recognizer keys (``backbone.*``, ``cls_head.*``).

    ``VivitModel`` checkpoints without the ``vivit.`` prefix are accepted
    too; the pooler of a ``VivitModel`` (not used for classification) is
    dropped.

    Raises:
        ValueError: Unknown layout, a missing tensor, a tensor left over
            (a key this mapping does not know), or a classifier missing.
    """
    sd = {(k if k.startswith(('vivit.', 'classifier.')) else 'vivit.' + k): v
          for k, v in hf_state_dict.items()}
    layout = detect_hf_layout(sd)
    for k in [k for k in sd if k.startswith('vivit.pooler.')]:
        del sd[k]
    used = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ValueError(
                f'HuggingFace ViViT checkpoint ({layout} layout) has no '
                f'{key!r}' + (' (a VivitModel checkpoint without a '
                              'classifier cannot become a recognizer)'
                              if key.startswith('classifier') else '') + '.')
        used.add(key)
        return sd[key]

    out = {ours: take(theirs) for ours, theirs in _GLOBAL_KEYS.items()}
    for i in range(_num_layers(sd, layout)):
        src = _BLOCK_PREFIX[layout].format(i)
        dst = f'backbone.layers.{i}.'
        for ours, theirs in _BLOCK_KEYS[layout].items():
            for p in ('weight', 'bias'):
                out[f'{dst}{ours}.{p}'] = take(f'{src}{theirs}.{p}')
        q, k, v = (src + name for name in _QKV_KEYS[layout])
        out[f'{dst}attn.qkv.weight'] = torch.cat(
            [take(f'{n}.weight') for n in (q, k, v)], dim=0)
        biases = [f'{n}.bias' for n in (q, k, v)]
        present = [b in sd for b in biases]
        if any(present) and not all(present):
            raise ValueError(f'Block {i} has biases for only some of q/k/v: '
                             f'{[b for b, p in zip(biases, present) if p]}.')
        if all(present):
            out[f'{dst}attn.qkv.bias'] = torch.cat(
                [take(b) for b in biases], dim=0)
    left = sorted(set(sd) - used)
    if left:
        raise ValueError(f'HuggingFace ViViT checkpoint ({layout} layout) '
                         f'has keys this converter does not know: {left[:8]}.')
    return out


def vivit_to_hf_state_dict(state_dict: Mapping[str, torch.Tensor],
                           layout: str = '4.x') -> Dict[str, torch.Tensor]:
    """Map a Model 1 recognizer state dict (``backbone.*``, ``cls_head.*``)
    to HuggingFace ``VivitForVideoClassification`` keys in ``layout``
    (``'4.x'``, the on-disk names that transformers 4 and 5 both read, or
    ``'5.x'``, transformers 5's in-memory module names).

    A uniform-frame-sampling (Conv2d) patch embedding becomes a Conv3d with
    temporal extent 1, which computes the same tokens.

    Raises:
        ValueError: Unknown ``layout``, or the state dict is not a Model 1
            recognizer with a CLS token and a ``ViViTHead``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}.')
    sd = dict(state_dict)
    if 'backbone.cls_token' not in sd:
        raise ValueError(
            "HuggingFace ViViT classifies the CLS token, but this checkpoint "
            "has no 'backbone.cls_token' (pooling='gap', or not Model 1).")
    extra = sorted(k for k in sd if k.startswith('backbone.') and (
        '.temporal_' in k or k.startswith('backbone.temporal_')))
    if extra:
        raise ValueError('Only Model 1 (ViViTM1) has a HuggingFace '
                         f'counterpart; found Model 2/3 keys {extra[:4]}.')
    used = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ValueError(f'Model 1 checkpoint has no {key!r}.')
        used.add(key)
        return sd[key]

    out = {theirs: take(ours) for ours, theirs in _GLOBAL_KEYS.items()}
    kernel = 'vivit.embeddings.patch_embeddings.projection.weight'
    if out[kernel].dim() == 4:  # uniform frame sampling: (D, C, p, p)
        out[kernel] = out[kernel].unsqueeze(2)
    layer_ids = {int(m.group(1)) for k in sd
                 for m in [re.match(r'backbone\.layers\.(\d+)\.', k)] if m}
    for i in sorted(layer_ids):
        src = f'backbone.layers.{i}.'
        dst = _BLOCK_PREFIX[layout].format(i)
        for ours, theirs in _BLOCK_KEYS[layout].items():
            for p in ('weight', 'bias'):
                out[f'{dst}{theirs}.{p}'] = take(f'{src}{ours}.{p}')
        names = [dst + n for n in _QKV_KEYS[layout]]
        for n, w in zip(names, take(f'{src}attn.qkv.weight').chunk(3, 0)):
            out[f'{n}.weight'] = w
        if f'{src}attn.qkv.bias' in sd:
            for n, b in zip(names, take(f'{src}attn.qkv.bias').chunk(3, 0)):
                out[f'{n}.bias'] = b
    left = sorted(set(sd) - used)
    if left:
        raise ValueError(f'Keys with no HuggingFace counterpart: {left[:8]}.')
    return {k: v.contiguous().clone() for k, v in out.items()}


# ---------------------------------------------------------------- configs
def hf_config_to_backbone(hf_config: Mapping) -> Tuple[dict, int,
                                                       Optional[List[str]]]:
    """A ``ViViTM1`` backbone config, the number of classes and the class
    names (None when absent or placeholders) from a HuggingFace ViViT
    ``config.json`` dict.

    Raises:
        ValueError: Not a ViViT config, or an option ViViTM1 cannot express
            (unsupported ``hidden_act``, a ``head_dim`` that is not
            ``hidden_size / num_attention_heads``).
    """
    cfg = dict(hf_config)
    if cfg.get('model_type', 'vivit') != 'vivit':
        raise ValueError(f"Expected a HuggingFace ViViT config (model_type "
                         f"'vivit'), got model_type {cfg['model_type']!r}.")
    act = cfg.get('hidden_act', 'gelu_fast')
    if act not in HF_ACTIVATIONS:
        raise ValueError(f'Unsupported HuggingFace hidden_act {act!r}; '
                         f'supported: {sorted(HF_ACTIVATIONS)}.')
    hidden = int(cfg.get('hidden_size', 768))
    heads = int(cfg.get('num_attention_heads', 12))
    head_dim = cfg.get('head_dim')
    if head_dim is not None and heads * int(head_dim) != hidden:
        raise ValueError(
            f'head_dim={head_dim} with {heads} heads does not span '
            f'hidden_size={hidden}; ViViTM1 needs heads * head_dim == '
            'hidden_size.')
    tubelet = [int(x) for x in cfg.get('tubelet_size', [2, 16, 16])]
    if len(tubelet) != 3:
        raise ValueError(f'tubelet_size must be [t, h, w], got {tubelet}.')
    image_size = cfg.get('image_size', 224)
    img_size = (int(image_size) if isinstance(image_size, int) else
                [int(x) for x in image_size])
    if isinstance(img_size, list) and img_size[0] == img_size[1]:
        img_size = img_size[0]
    backbone = dict(
        type='ViViTM1',
        arch=BaseViViT.arch_name(dict(
            embed_dims=hidden,
            num_layers=int(cfg.get('num_hidden_layers', 12)),
            num_heads=heads,
            feedforward_channels=int(cfg.get('intermediate_size', 3072)))),
        img_size=img_size,
        num_frames=int(cfg.get('num_frames', 32)),
        patch_size=tubelet[1] if tubelet[1] == tubelet[2] else tubelet[1:],
        tubelet_size=tubelet[0],
        tokenizer='tubelet',
        in_channels=int(cfg.get('num_channels', 3)),
        pooling='token',
        qkv_bias=bool(cfg.get('qkv_bias', True)),
        drop_rate=float(cfg.get('hidden_dropout_prob', 0.0)),
        attn_drop_rate=float(cfg.get('attention_probs_dropout_prob', 0.0)),
        act_cfg=dict(HF_ACTIVATIONS[act]),
        norm_cfg=dict(type='LN', eps=float(cfg.get('layer_norm_eps', 1e-6))))
    id2label = cfg.get('id2label')
    num_classes = int(cfg.get('num_labels', len(id2label) if id2label else 2))
    return backbone, num_classes, label_names_from_id2label(id2label,
                                                            num_classes)


def _act_to_hf(act_cfg: Mapping) -> str:
    kind = act_cfg.get('type')
    if kind == 'GELU':
        return ('gelu_fast' if act_cfg.get('approximate', 'none') == 'tanh'
                else 'gelu')
    for name in ('relu', 'silu'):
        if kind == HF_ACTIVATIONS[name]['type']:
            return name
    raise ValueError(f'Activation {dict(act_cfg)} has no HuggingFace '
                     'hidden_act; supported: GELU (exact or tanh), ReLU, '
                     'SiLU.')


def backbone_to_hf_config(backbone, num_classes: int,
                          label_names: Optional[List[str]] = None) -> dict:
    """A HuggingFace ViViT ``config.json`` dict for a built ``ViViTM1``
    backbone module (its attributes resolve arch names and defaults).

    Raises:
        ValueError: The backbone has no HuggingFace counterpart (not Model 1,
            ``pooling='gap'``, a norm other than LayerNorm, an activation
            HuggingFace lacks).
    """
    if getattr(backbone, 'paper_model', None) != 1:
        raise ValueError('Only Model 1 (ViViTM1) has a HuggingFace '
                         f'counterpart, got {type(backbone).__name__}.')
    if backbone.pooling != 'token':
        raise ValueError("HuggingFace ViViT classifies a CLS token; the "
                         "backbone must use pooling='token', got "
                         f'{backbone.pooling!r}.')
    if backbone.norm_cfg.get('type') not in ('LN', 'LayerNorm'):
        raise ValueError(f'HuggingFace ViViT uses LayerNorm, got norm_cfg '
                         f'{backbone.norm_cfg}.')
    h, w = backbone.img_size
    names = label_names or [f'LABEL_{i}' for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f'{len(names)} label names for {num_classes} '
                         'classes.')
    return dict(
        architectures=['VivitForVideoClassification'],
        model_type='vivit',
        image_size=h if h == w else [h, w],
        num_frames=backbone.num_frames,
        tubelet_size=[backbone.tubelet_size, *backbone.patch_size],
        num_channels=backbone.in_channels,
        hidden_size=backbone.embed_dims,
        num_hidden_layers=backbone.num_layers,
        num_attention_heads=backbone.num_heads,
        intermediate_size=backbone.feedforward_channels,
        hidden_act=_act_to_hf(backbone.act_cfg),
        hidden_dropout_prob=backbone.drop_rate,
        attention_probs_dropout_prob=backbone.attn_drop_rate,
        initializer_range=0.02,
        layer_norm_eps=float(backbone.norm_cfg.get('eps', 1e-5)),
        qkv_bias=backbone.qkv_bias,
        id2label={str(i): n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)},
    )


def hf_input_normalisation(src_dir: str) -> Tuple[List[float], List[float]]:
    """Per-channel mean/std on 0-255 pixels that reproduce the
    ``preprocessor_config.json`` in ``src_dir`` (HuggingFace's
    ``VivitImageProcessor``: ``x * rescale_factor - offset``, then
    ``(x - image_mean) / image_std`` if ``do_normalize``).

    Note:
        The processor's defaults give [-3, 1] (rescale to [-1, 1], then
        normalise again with mean = std = 0.5); the official models were
        trained on [-1, 1], which is what the converters use by default.
    """
    path = os.path.join(src_dir, 'preprocessor_config.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'No preprocessor_config.json in {src_dir!r}.')
    with open(path, encoding='utf-8') as f:
        p = json.load(f)
    rf = float(p.get('rescale_factor', 1 / 127.5)) if p.get(
        'do_rescale', True) else 1.0
    off = 1.0 if p.get('offset', True) and p.get('do_rescale', True) else 0.0
    m = p.get('image_mean', [0.5] * 3) if p.get('do_normalize', True) \
        else [0.0] * 3
    s = p.get('image_std', [0.5] * 3) if p.get('do_normalize', True) \
        else [1.0] * 3
    m = [m] * 3 if isinstance(m, (int, float)) else m
    s = [s] * 3 if isinstance(s, (int, float)) else s
    # x' = (x * rf - off - m) / s = (x - (off + m) / rf) / (s / rf)
    return ([(off + mi) / rf for mi in m], [si / rf for si in s])


# ------------------------------------------------------------ directories
def load_hf_model_dir(src: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """``(config dict, state dict)`` of a local HuggingFace model folder.

    Weights are read from ``model.safetensors``, a sharded
    ``model.safetensors.index.json``, or ``pytorch_model.bin`` (with
    ``torch.load(weights_only=True)``), in that order of preference.
    """
    if not os.path.isdir(src):
        raise FileNotFoundError(f'{src!r} is not a folder; pass the local '
                                'HuggingFace model folder (config.json + '
                                'weights).')
    cfg_path = os.path.join(src, 'config.json')
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f'No config.json in {src!r}.')
    with open(cfg_path, encoding='utf-8') as f:
        config = json.load(f)
    single = os.path.join(src, 'model.safetensors')
    index = os.path.join(src, 'model.safetensors.index.json')
    binary = os.path.join(src, 'pytorch_model.bin')
    if os.path.isfile(single):
        from safetensors.torch import load_file
        return config, load_file(single)
    if os.path.isfile(index):
        from safetensors.torch import load_file
        with open(index, encoding='utf-8') as f:
            shards = sorted(set(json.load(f)['weight_map'].values()))
        sd = {}
        for shard in shards:
            sd.update(load_file(os.path.join(src, shard)))
        return config, sd
    if os.path.isfile(binary):
        return config, safe_load(binary)
    raise FileNotFoundError(
        f'No weights in {src!r}: expected model.safetensors, '
        'model.safetensors.index.json or pytorch_model.bin.')


def convert_hf_model_dir(src: str,
                         out_checkpoint: str,
                         out_config: str,
                         normalisation: str = 'official',
                         **config_kwargs) -> dict:
    """Convert a local HuggingFace ViViT folder into an MMAction2 checkpoint
    and config (see :func:`vivit_mm.convert.recognizer_config` for
    ``config_kwargs``).

    Args:
        src (str): HuggingFace model folder.
        out_checkpoint (str): Where to write the ``.pth`` checkpoint.
        out_config (str): Where to write the ``.py`` config.
        normalisation (str): ``'official'`` (inputs in [-1, 1], as the
            official models were trained) or ``'processor'`` (reproduce the
            folder's ``preprocessor_config.json``). Defaults to
            ``'official'``.

    Returns:
        dict: The config written.
    """
    from .recognizer import write_recognizer
    checks.one_of(normalisation, 'normalisation', ('official', 'processor'))
    hf_config, hf_sd = load_hf_model_dir(src)
    layout = detect_hf_layout(hf_sd)
    backbone, num_classes, names = hf_config_to_backbone(hf_config)
    if normalisation == 'processor':
        config_kwargs['mean'], config_kwargs['std'] = \
            hf_input_normalisation(src)
    return write_recognizer(
        hf_to_vivit_state_dict(hf_sd), backbone, num_classes,
        out_checkpoint, out_config, label_names=names,
        source=f'the weights in {src!r} ({layout} layout)',
        meta=dict(converted_from='huggingface', source=os.path.abspath(src),
                  hf_layout=layout, hf_config=hf_config),
        header='ViViT Model 1 converted from the HuggingFace model '
        f'{os.path.basename(os.path.abspath(src))!r} by vivit_mm.convert '
        '(tools/convert/hf_to_vivit.py).', **config_kwargs)


def export_hf_model_dir(checkpoint: str, config: str, out_dir: str,
                        layout: str = '4.x') -> dict:
    """Write a Model 1 recognizer (MMAction2 ``checkpoint`` + ``config``)
    as a HuggingFace folder (``config.json`` + ``model.safetensors``) that
    ``VivitForVideoClassification.from_pretrained`` loads.

    The default ``layout='4.x'`` is what transformers 5 itself writes with
    ``save_pretrained`` (it renames its 5.x modules back on saving), and
    both transformers 4 and 5 read it.

    Returns:
        dict: The HuggingFace config written.
    """
    from mmengine.config import Config
    from safetensors.torch import save_file

    from .io import unwrap_state_dict
    from .recognizer import check_against_config

    cfg = Config.fromfile(config)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    sd = {k: v for k, v in unwrap_state_dict(safe_load(checkpoint)).items()
          if k.startswith(('backbone.', 'cls_head.'))}
    check_against_config(sd, model_cfg, f'the weights in {checkpoint!r}')
    backbone = build_model(model_cfg['backbone'], 'meta')
    num_classes = model_cfg['cls_head']['num_classes']
    names = cfg.get('label_names')
    hf_config = backbone_to_hf_config(backbone, num_classes,
                                      list(names) if names else None)
    hf_sd = vivit_to_hf_state_dict(sd, layout)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'config.json'), 'w',
              encoding='utf-8') as f:
        json.dump(hf_config, f, indent=2)
    save_file({k: v.float() for k, v in hf_sd.items()},
              os.path.join(out_dir, 'model.safetensors'),
              metadata={'format': 'pt'})
    return hf_config
