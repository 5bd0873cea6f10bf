"""What every converter writes: an MMAction2 recognizer config around a ViViT
backbone, and a checkpoint that ``mmaction.apis.init_recognizer`` loads.

The checkpoint holds ``state_dict`` (keys ``backbone.*`` and ``cls_head.*``)
and a ``meta`` dict of plain Python types only, so
``torch.load(..., weights_only=True)`` reads it. The config is written by
mmengine's ``Config``.
"""
import copy
import json
import os
import textwrap
from typing import List, Mapping, Optional, Sequence, Union

import torch
from mmengine.config import Config

from ..models.backbones.base import BaseViViT
from ..models.utils.load_checks import likely_causes
from ..utils import checks
from ..utils.build import parameter_shapes

#: The official models' input range [-1, 1]: ``(x - 127.5) / 127.5``.
OFFICIAL_MEAN = (127.5, 127.5, 127.5)
OFFICIAL_STD = (127.5, 127.5, 127.5)
#: The parts of a recognizer that carry converted weights.
WEIGHT_PREFIXES = ('backbone.', 'cls_head.')
#: Default test data of a converted config (MMAction2's Kinetics layout).
DEFAULT_ANN_FILE = 'data/kinetics400/kinetics400_val_list_videos.txt'
DEFAULT_DATA_PREFIX = 'data/kinetics400/videos_val'


def test_pipeline(num_frames: int,
                  img_size: Union[int, Sequence[int]],
                  num_clips: int = 4,
                  frame_interval: int = 2,
                  three_crop: bool = True,
                  test_scale: Optional[int] = None) -> List[dict]:
    """The multi-view test pipeline of a ViViT recognizer (see
    :func:`recognizer_config` for the arguments): with the defaults, that
    of ``configs/_base_/datasets/kinetics400_32x2_224.py`` (with
    ``three_crop=False``, the SSv2 one), which an installed package cannot
    read; ``tests/configs/test_configs.py`` keeps the two equal."""
    checks.positive_int(num_clips, 'num_clips')
    checks.positive_int(frame_interval, 'frame_interval')
    h, w = checks.int_pair(img_size, 'img_size')
    if three_crop:
        if h != w:
            raise ValueError(
                f'Three spatial crops need a square img_size, got {(h, w)}; '
                'use a single centre crop (three_crop=False).')
        if test_scale not in (None, h):
            raise ValueError(
                f'MMAction2\'s ThreeCrop takes crops that span the short '
                f'side, so test_scale must equal the crop size {h}, got '
                f'{test_scale}; use a centre crop for a larger scale.')
        test_scale = h
    elif test_scale is None:
        test_scale = int(round(min(h, w) * 256 / 224))
    crop = h if h == w else (w, h)  # MMAction2 crops take (w, h)
    return [
        dict(type='VideoReadGuard', transforms=[
            dict(type='DecordInit'),
            dict(type='SampleFrames', clip_len=num_frames,
                 frame_interval=frame_interval, num_clips=num_clips,
                 test_mode=True),
            dict(type='DecordDecode')]),
        dict(type='Resize', scale=(-1, test_scale)),
        dict(type='ThreeCrop' if three_crop else 'CenterCrop',
             crop_size=crop),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]


def recognizer_config(backbone: dict,
                      num_classes: int,
                      *,
                      num_clips: int = 4,
                      frame_interval: int = 2,
                      three_crop: bool = True,
                      test_scale: Optional[int] = None,
                      mean: Sequence[float] = OFFICIAL_MEAN,
                      std: Sequence[float] = OFFICIAL_STD,
                      label_names: Optional[Sequence[str]] = None,
                      ann_file: str = DEFAULT_ANN_FILE,
                      data_prefix: str = DEFAULT_DATA_PREFIX) -> dict:
    """A complete test-time config for a converted ViViT recognizer.

    Args:
        backbone (dict): The backbone config (``type='ViViTM1'`` ...); it
            must hold ``img_size``, ``num_frames`` and ``arch``.
        num_classes (int): Classifier outputs.
        num_clips (int): Temporal views (``SampleFrames`` clips).
            Defaults to 4, as the paper's test protocol.
        frame_interval (int): Frame stride of a clip. Defaults to 2.
        three_crop (bool): Three spatial crops per clip (``ThreeCrop``) if
            True, one centre crop otherwise. Defaults to True.
        test_scale (int, optional): Short side the frames are resized to
            before cropping. Defaults to the crop size with ``ThreeCrop``
            (MMAction2's ``ThreeCrop`` needs crops that span the short side)
            and ``round(crop * 256 / 224)`` with a centre crop (as scenic
            and HuggingFace resize to 256 for 224 crops).
        mean, std (Sequence[float]): Per-channel normalisation of 0-255
            pixels. Defaults to 127.5 / 127.5, i.e. the [-1, 1] range.
        label_names (Sequence[str], optional): Class names, stored as the
            top-level ``label_names`` list.
        ann_file, data_prefix (str): Test annotation list and video folder
            for ``tools/test.py``.

    Returns:
        dict: Top-level config variables, ready for :func:`write_config`.
    """
    pipeline = test_pipeline(backbone['num_frames'], backbone['img_size'],
                             num_clips, frame_interval, three_crop,
                             test_scale)
    embed_dims = BaseViViT.parse_arch(backbone['arch'])['embed_dims']
    model = dict(
        type='Recognizer3D',
        backbone=copy.deepcopy(backbone),
        cls_head=dict(type='ViViTHead', num_classes=num_classes,
                      in_channels=embed_dims, average_clips='score'),
        data_preprocessor=dict(type='ActionDataPreprocessor',
                               mean=[float(m) for m in mean],
                               std=[float(s) for s in std],
                               format_shape='NCTHW'))
    cfg = dict(
        default_scope='mmaction',
        custom_imports=dict(imports=['vivit_mm'],
                            allow_failed_imports=False),
        model=model,
        test_pipeline=pipeline,
        test_dataloader=dict(
            batch_size=1, num_workers=2, persistent_workers=True,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='VideoDataset', ann_file=ann_file,
                         data_prefix=dict(video=data_prefix),
                         pipeline=pipeline, test_mode=True)),
        test_evaluator=dict(type='AccMetric'),
        test_cfg=dict(type='TestLoop'),
    )
    if label_names is not None:
        if len(label_names) != num_classes:
            raise ValueError(f'{len(label_names)} label names for '
                             f'{num_classes} classes.')
        cfg['label_names'] = [str(n) for n in label_names]
    return cfg


def write_config(cfg: Mapping, path: Union[str, os.PathLike],
                 header: str = '') -> None:
    """Write ``cfg`` as an MMAction2 config with mmengine's ``Config``,
    after a comment ``header``."""
    text = Config(copy.deepcopy(dict(cfg))).pretty_text
    lines = [f'# {line}' for line in textwrap.wrap(header, 77)]
    _makedirs_for(path)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines + [text]))


def save_checkpoint(state_dict: Mapping[str, torch.Tensor],
                    path: Union[str, os.PathLike],
                    meta: Optional[dict] = None) -> None:
    """Save an MMAction2 checkpoint ``{'meta': ..., 'state_dict': ...}``.

    Tensors are stored contiguous and fp32 (unless integer); ``meta`` is
    reduced to plain JSON types, and the file is checked to load with a
    weights-only load.
    """
    sd = {k: _to_saveable(v) for k, v in state_dict.items()}
    _makedirs_for(path)
    meta = json.loads(json.dumps(dict(meta or {}), default=str))
    torch.save({'meta': meta, 'state_dict': sd}, path)
    # Refuse to leave behind a file that a weights-only load rejects.
    torch.load(path, map_location='cpu', weights_only=True)


def _to_saveable(t: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t).detach().cpu()
    if t.is_floating_point():
        t = t.float()
    return t.contiguous().clone()


def _makedirs_for(path: Union[str, os.PathLike]) -> None:
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)


def check_against_config(state_dict: Mapping[str, torch.Tensor],
                         model_cfg: dict,
                         source: str = 'the converted weights') -> None:
    """Raise ``ValueError`` unless ``state_dict`` has exactly the
    ``backbone.*``/``cls_head.*`` parameters (names and shapes) of the
    recognizer that ``model_cfg`` builds (on the ``meta`` device)."""
    expected = parameter_shapes(model_cfg, WEIGHT_PREFIXES)
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got)
                   if expected[k] != got[k])
    if not (missing or unexpected or wrong):
        return
    parts = []
    for name, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            parts.append(f'{name} {keys[:8]}' + (
                f' (+{len(keys) - 8} more)' if len(keys) > 8 else ''))
    for k in wrong[:8]:
        parts.append(f'{k}: weights {list(got[k])} vs config '
                     f'{list(expected[k])}')
    kind = model_cfg.get('backbone', {}).get('type', model_cfg.get('type'))
    causes = likely_causes(expected, got)
    raise ValueError(
        f'Config/weights mismatch: {source} do not fit the model that the '
        f'config describes ({kind}): ' + '; '.join(parts)
        + f'. Likely cause: {"; ".join(causes)}.')


def write_recognizer(state_dict: Mapping[str, torch.Tensor],
                     backbone: dict,
                     num_classes: int,
                     out_checkpoint: Union[str, os.PathLike],
                     out_config: Union[str, os.PathLike],
                     *,
                     label_names: Optional[Sequence[str]] = None,
                     source: str = 'the converted weights',
                     meta: Optional[dict] = None,
                     header: str = '',
                     **config_kwargs) -> dict:
    """Check converted weights against their config, then write both.

    Args:
        state_dict, backbone, num_classes: The converted recognizer.
        out_checkpoint, out_config: Where to write them.
        label_names (Sequence[str], optional): Class names, stored in the
            config and as the checkpoint's ``dataset_meta``.
        source (str): What the weights are, for the mismatch error.
        meta (dict, optional): The checkpoint's ``meta``.
        header (str): Comment at the top of the config.
        **config_kwargs: As :func:`recognizer_config`.

    Returns:
        dict: The config written.
    """
    cfg = recognizer_config(backbone, num_classes, label_names=label_names,
                            **config_kwargs)
    check_against_config(state_dict, cfg['model'], source)
    meta = dict(meta or {})
    if label_names:
        meta['dataset_meta'] = dict(classes=list(label_names))
    save_checkpoint(state_dict, out_checkpoint, meta)
    write_config(cfg, out_config, header=header)
    return cfg


def label_names_from_id2label(id2label: Optional[Mapping],
                              num_classes: int) -> Optional[List[str]]:
    """Ordered class names from a HuggingFace-style ``id2label``; None when
    it is absent or holds only the placeholder names ``LABEL_i``."""
    if not id2label:
        return None
    names = {int(k): str(v) for k, v in id2label.items()}
    if sorted(names) != list(range(num_classes)):
        raise ValueError(
            f'id2label has ids {sorted(names)[:5]}... but the classifier has '
            f'{num_classes} outputs; they must be 0..{num_classes - 1}.')
    ordered = [names[i] for i in range(num_classes)]
    if all(n == f'LABEL_{i}' for i, n in enumerate(ordered)):
        return None
    return ordered


__all__ = ['OFFICIAL_MEAN', 'OFFICIAL_STD', 'test_pipeline',
           'recognizer_config', 'write_config', 'save_checkpoint',
           'check_against_config', 'write_recognizer',
           'label_names_from_id2label']
