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

The blocks are mapped by :mod:`vivit_mm.convert.flax`. Model 4 has exactly
Model 1's parameters (its heads are split in the attention function: first
half temporal, second half spatial), so a tree without ``cls`` is Model 1
with average pooling or Model 4, and the caller has to say which.

Two training settings are not recorded in a checkpoint and are stated in
the conversion's notes: scenic's ``classifier`` when the tree has no CLS
token (scenic's default ``'gap'`` is assumed; ``'gmp'``, ``'gsp'`` and
``'0'`` have no vivit_mm pooling and are refused), and Model 3's
``attention_order`` (scenic's default ``'time_space'``; ``ViViTM3``'s own
default is ``'space_time'``).
"""
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from ..models.backbones.base import BaseViViT
from ..models.utils.pos_embed import solve_token_grid
from ..utils import checks
from . import flax
from .io import read_checkpoint

#: Where the parameters sit inside a checkpoint, most specific first.
PARAM_ROOTS = ('optimizer/target/params/', 'optimizer/target/', 'params/',
               'target/', '')
MODELS = (1, 2, 3, 4)
#: scenic ``classifier`` values and the vivit_mm pooling they are.
CLASSIFIERS = {'token': 'token', 'gap': 'gap'}
#: scenic ``classifier`` values vivit_mm has no pooling for.
UNSUPPORTED_CLASSIFIERS = {
    'gmp': 'global max pooling of the final tokens',
    'gsp': 'global sum pooling of the final tokens',
    '0': 'the first patch token, without a CLS token',
}
ATTENTION_ORDERS = ('time_space', 'space_time')
#: Releases whose classifier is several heads in one ``output_projection``:
#: number of outputs -> (release, scenic's class_splits).
MULTI_HEAD_RELEASES = {
    397: ('the Epic-Kitchens ViViT-L/16x2 FE release', '[300, 97] (noun, '
          'verb)'),
}


class ConvertedModel(NamedTuple):
    """A converted official checkpoint.

    Attributes:
        state_dict (dict): ``backbone.*`` and ``cls_head.*`` tensors.
        backbone (dict): The backbone config.
        num_classes (int): Classifier outputs.
        notes (list[str]): Settings the checkpoint does not record and that
            were assumed (printed by the converter CLI).
    """
    state_dict: Dict[str, torch.Tensor]
    backbone: dict
    num_classes: int
    notes: List[str]


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


def _resolve_model(params, model: Optional[int]) -> int:
    detected = detect_scenic_model(params)
    if model is not None:
        checks.one_of(model, 'model', MODELS)
    if detected is None:
        if model not in (1, 4):
            raise ValueError(
                'This tree has Model 1/4 blocks and no CLS token: it is Model '
                '1 with average pooling or Model 4 (factorised dot-product '
                'attention), which have identical parameters. Say which with '
                'model=1 or model=4 (--model on the command line).')
        return model
    if model is not None and model != detected:
        raise ValueError(
            f'model={model} was given, but the parameter names are those of '
            f'Model {detected}' + (" (Model 4 has no CLS token, this tree has "
                                   "'cls')" if model == 4 else '') + '.')
    return detected


def _pooling(has_cls: bool, classifier: Optional[str],
             notes: List[str]) -> str:
    """vivit_mm's pooling for scenic's ``classifier``."""
    if classifier is None:
        classifier = 'token' if has_cls else 'gap'
        if not has_cls:
            notes.append(
                "classifier 'gap' (global average pooling) assumed: the tree "
                "has no CLS token, scenic's default classifier is 'gap' and "
                "the checkpoint does not record it; trees trained with 'gmp', "
                "'gsp' or '0' cannot be converted.")
    if classifier in UNSUPPORTED_CLASSIFIERS:
        raise ValueError(
            f"scenic classifier {classifier!r} "
            f'({UNSUPPORTED_CLASSIFIERS[classifier]}) has no vivit_mm '
            f"pooling; vivit_mm supports {tuple(CLASSIFIERS)} ('token': the "
            "CLS token, 'gap': global average pooling).")
    checks.one_of(classifier, 'classifier',
                  tuple(CLASSIFIERS) + tuple(UNSUPPORTED_CLASSIFIERS))
    if (classifier == 'token') != has_cls:
        raise ValueError(
            f"classifier={classifier!r}, but the tree "
            f"{'has' if has_cls else 'has no'} CLS token: scenic adds one "
            "exactly for classifier='token'.")
    return CLASSIFIERS[classifier]


def _frame_grid(num_tokens: int, patch, t: int, img_size, num_frames):
    """``(img_size, num_frames)`` whose token grid holds the ``num_tokens``
    of a Model 1/3/4 position table."""
    if img_size is None and num_frames is None:
        img_size = 224
    if img_size is not None:
        h, w = checks.int_pair(img_size, 'img_size')
        if h % patch[0] or w % patch[1]:
            raise ValueError(f'Config/weights mismatch: img_size {img_size} '
                             f'is not a multiple of the patch {patch}.')
        grid = solve_token_grid(num_tokens,
                                spatial=(h // patch[0], w // patch[1]))
        if grid is None:
            raise ValueError(
                f'Config/weights mismatch: the position table has '
                f'{num_tokens} tokens, which is not a whole number of frames '
                f'of {(h // patch[0]) * (w // patch[1])} tokens for img_size '
                f'{img_size} and patch {patch}; pass the img_size the model '
                'was trained at.')
        if num_frames is not None and num_frames != grid[0] * t:
            needed = num_frames // t * grid[1] * grid[2]
            raise ValueError(
                f'Config/weights mismatch: num_frames={num_frames} with '
                f'img_size {img_size} needs {needed} tokens, the position '
                f'table has {num_tokens}.')
        return img_size, grid[0] * t
    grid = solve_token_grid(num_tokens, n_t=num_frames // t) \
        if num_frames % t == 0 else None
    if grid is None:
        raise ValueError(
            f'Config/weights mismatch: {num_tokens} position tokens are not '
            f'{num_frames // t} frames of a square token grid (num_frames='
            f'{num_frames}, tubelet {t}); pass img_size.')
    _, n_h, n_w = grid
    size = (n_h * patch[0], n_w * patch[1])
    return (size[0] if size[0] == size[1] else size), num_frames


def _model2(tree, out, patch, t, img_size, num_frames, token):
    """Factorised encoder: spatial + temporal encoders and their CLS."""
    if token:
        out['backbone.cls_token'] = tree.take('cls_SpatialTransformer')
    layers, heads, ffn = flax.encoder(tree, 'SpatialTransformer',
                                      'backbone.', out)
    n_s = out['backbone.pos_embed'][1].shape[1] - int(token)
    if img_size is None:
        grid = solve_token_grid(n_s, n_t=1)
        if grid is None or patch[0] != patch[1]:
            raise ValueError(f'{n_s} spatial tokens are not a square grid; '
                             'pass img_size.')
        img_size = grid[1] * patch[0]
    h, w = checks.int_pair(img_size, 'img_size')
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
        temporal_layers, t_heads, t_ffn = flax.encoder(
            tree, 'TemporalTransformer', 'backbone.temporal_', out)
        if (t_heads, t_ffn) != (heads, ffn):
            raise ValueError(
                f'The temporal encoder (heads {t_heads}, mlp {t_ffn}) differs '
                f'from the spatial one (heads {heads}, mlp {ffn}); ViViTM2 '
                'uses one width for both.')
        n_t = out['backbone.temporal_pos_embed'][1].shape[1] - int(token)
        if num_frames is not None and num_frames != n_t * t:
            raise ValueError(
                f'Config/weights mismatch: num_frames={num_frames} with '
                f'tubelet {t} gives {num_frames // t} temporal tokens, the '
                f'temporal position table has {n_t}.')
        num_frames = n_t * t
    elif num_frames is None:
        num_frames = 32
    arch = dict(embed_dims=out['backbone.pos_embed'][1].shape[-1],
                num_layers=layers, num_heads=heads, feedforward_channels=ffn)
    return arch, img_size, num_frames, temporal_layers


# -------------------------------------------------------------- mapping
def scenic_to_vivit(params: Dict[str, np.ndarray],
                    model: Optional[int] = None,
                    img_size: Optional[Union[int, Sequence[int]]] = None,
                    num_frames: Optional[int] = None,
                    attention_order: str = 'time_space',
                    classifier: Optional[str] = None,
                    single_head: bool = False) -> ConvertedModel:
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
            default, and so this function's) or ``'space_time'``
            (``ViViTM3``'s own default). Not stored in checkpoints.
        classifier (str, optional): scenic's ``classifier``: ``'token'`` or
            ``'gap'``; by default ``'token'`` when the tree has a CLS token,
            else ``'gap'`` (scenic's default, stated in the notes).
            ``'gmp'``, ``'gsp'`` and ``'0'`` are refused by name.
        single_head (bool): Convert a classifier with the output count of a
            known multi-head release (Epic-Kitchens: 397 = 300 nouns + 97
            verbs) as one head anyway. Defaults to False: refused.

    Returns:
        ConvertedModel: state dict (``backbone.*``, ``cls_head.*``),
        backbone config, number of classes, notes on what was assumed.

    Raises:
        ValueError: Unknown layout, an ambiguous or contradicted ``model``,
            an unsupported ``classifier``, a parameter missing or unknown,
            or sizes that contradict the weights.
    """
    detected = _resolve_model(params, model)
    checks.one_of(attention_order, 'attention_order', ATTENTION_ORDERS)
    if params.get('pre_logits/kernel') is not None:
        raise ValueError(
            "The tree has a 'pre_logits' layer (representation_size set); "
            'ViViTHead has no such layer, so it is not supported.')
    tree = flax.FlaxTree(params, f'Scenic Model {detected} checkpoint')
    out: Dict[str, flax.Entry] = {}
    notes: List[str] = []
    flax.patch_embedding(tree, 'embedding', 'backbone.patch_embed.projection',
                         out)
    kernel = out['backbone.patch_embed.projection.weight'][1]
    D, in_ch = kernel.shape[:2]
    t = kernel.shape[2] if kernel.dim() == 5 else 1
    patch = tuple(kernel.shape[-2:])
    token = tree.has('cls_SpatialTransformer' if detected == 2 else 'cls')
    pooling = _pooling(token, classifier, notes)

    backbone = dict(type=f'ViViTM{detected}')
    if detected == 2:
        arch, img_size, num_frames, backbone['num_temporal_layers'] = \
            _model2(tree, out, patch, t, img_size, num_frames, token)
    else:
        if token:
            out['backbone.cls_token'] = tree.take('cls')
        layers, heads, ffn = flax.encoder(tree, 'Transformer', 'backbone.',
                                          out)
        arch = dict(embed_dims=D, num_layers=layers, num_heads=heads,
                    feedforward_channels=ffn)
        img_size, num_frames = _frame_grid(
            out['backbone.pos_embed'][1].shape[1] - int(token), patch, t,
            img_size, num_frames)
    if detected == 3:
        backbone['attention_order'] = attention_order
        notes.append(
            f"attention_order={attention_order!r}: the checkpoint does not "
            "record it; scenic's default is 'time_space' (ViViTM3's own "
            "default is 'space_time'), pass attention_order if the model was "
            'trained with the other.')
    flax.dense(tree, 'output_projection', 'cls_head.fc_cls', out)
    outputs = out['cls_head.fc_cls.weight'][1].shape[0]
    if outputs in MULTI_HEAD_RELEASES and not single_head:
        release, splits = MULTI_HEAD_RELEASES[outputs]
        raise ValueError(
            f'output_projection has {outputs} outputs, as {release}: scenic '
            f'trained it as several classifiers in one layer (class_splits '
            f'{splits}, vivit_multihead_classification), which a single '
            'ViViTHead and MMAction2\'s accuracy metric do not score. This '
            'release is not supported yet. If this is in fact one '
            f'{outputs}-class classifier, pass single_head=True '
            '(--single-head).')
    left = tree.leftover()
    if left:
        raise ValueError(f'Scenic Model {detected} tree has parameters this '
                         f'converter does not know: {left[:8]}.')
    backbone.update(
        arch=BaseViViT.arch_name(arch), img_size=img_size,
        num_frames=num_frames, patch_size=patch[0]
        if patch[0] == patch[1] else list(patch), tubelet_size=t,
        tokenizer='tubelet' if kernel.dim() == 5 else 'uniform',
        in_channels=in_ch, pooling=pooling, qkv_bias=True,
        act_cfg=dict(type='GELU', approximate='tanh'),
        norm_cfg=dict(type='LN', eps=1e-6))
    state_dict = {k: v for k, (_, v) in out.items()}
    num_classes = state_dict['cls_head.fc_cls.weight'].shape[0]
    return ConvertedModel(state_dict, backbone, num_classes, notes)


# ------------------------------------------------------------------ files
def convert_scenic_checkpoint(src: str,
                              out_checkpoint: str,
                              out_config: str,
                              model: Optional[int] = None,
                              img_size=None,
                              num_frames: Optional[int] = None,
                              attention_order: str = 'time_space',
                              classifier: Optional[str] = None,
                              single_head: bool = False,
                              label_names: Optional[Sequence[str]] = None,
                              **config_kwargs) -> tuple:
    """Convert an official checkpoint file (flax msgpack or ``.npz``) into
    an MMAction2 checkpoint and config; see :func:`scenic_to_vivit` and
    :func:`vivit_mm.convert.recognizer_config` for the options.

    Returns:
        tuple: ``(config dict written, notes)``.
    """
    from .recognizer import write_recognizer
    params = find_params(read_checkpoint(src))
    converted = scenic_to_vivit(
        params, model=model, img_size=img_size, num_frames=num_frames,
        attention_order=attention_order, classifier=classifier,
        single_head=single_head)
    number = converted.backbone['type'][-1]
    cfg = write_recognizer(
        converted.state_dict, converted.backbone, converted.num_classes,
        out_checkpoint, out_config, label_names=label_names,
        source=f'the weights in {src!r}',
        meta=dict(converted_from='scenic', source=os.path.abspath(src),
                  scenic_model=int(number), notes=converted.notes),
        header=f'ViViT Model {number} converted from the official '
        f'checkpoint {os.path.basename(src)!r} by vivit_mm.convert '
        '(tools/convert/scenic_to_vivit.py).', **config_kwargs)
    return cfg, converted.notes
