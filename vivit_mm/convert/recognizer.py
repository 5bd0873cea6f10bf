"""What every converter writes: an MMAction2 recognizer config around a ViViT
backbone, and a checkpoint that ``mmaction.apis.init_recognizer`` loads.

The checkpoint holds ``state_dict`` (keys ``backbone.*`` and ``cls_head.*``)
and a ``meta`` dict of plain Python types only, so
``torch.load(..., weights_only=True)`` reads it.
"""
import copy
import os
import textwrap
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

#: The official models' input range [-1, 1]: ``(x - 127.5) / 127.5``.
OFFICIAL_MEAN = (127.5, 127.5, 127.5)
OFFICIAL_STD = (127.5, 127.5, 127.5)
#: The parts of a recognizer that carry converted weights.
WEIGHT_PREFIXES = ('backbone.', 'cls_head.')


def _hw(img_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


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
                      ann_file: str = 'data/kinetics400/'
                      'kinetics400_val_list_videos.txt',
                      data_prefix: str = 'data/kinetics400/videos_val'
                      ) -> dict:
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
    for name, value in (('num_clips', num_clips),
                        ('frame_interval', frame_interval)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}.')
    h, w = _hw(backbone['img_size'])
    embed_dims = _embed_dims(backbone['arch'])
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
    test_pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=backbone['num_frames'],
             frame_interval=frame_interval, num_clips=num_clips,
             test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, test_scale)),
        dict(type='ThreeCrop' if three_crop else 'CenterCrop',
             crop_size=crop),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]
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
        test_pipeline=test_pipeline,
        test_dataloader=dict(
            batch_size=1, num_workers=2, persistent_workers=True,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='VideoDataset', ann_file=ann_file,
                         data_prefix=dict(video=data_prefix),
                         pipeline=test_pipeline, test_mode=True)),
        test_evaluator=dict(type='AccMetric'),
        test_cfg=dict(type='TestLoop'),
    )
    if label_names is not None:
        if len(label_names) != num_classes:
            raise ValueError(f'{len(label_names)} label names for '
                             f'{num_classes} classes.')
        cfg['label_names'] = [str(n) for n in label_names]
    return cfg


def arch_name(arch: dict) -> Union[str, dict]:
    """``'b'``, ``'l'`` or ``'h'`` when ``arch`` is that zoo entry, else
    ``arch`` itself (for shorter, clearer configs)."""
    from ..models.backbones.base import BaseViViT
    for name in ('b', 'l', 'h'):
        if BaseViViT.arch_zoo[name] == dict(arch):
            return name
    return dict(arch)


def _embed_dims(arch: Union[str, dict]) -> int:
    from ..models.backbones.base import BaseViViT
    return BaseViViT.parse_arch(arch)['embed_dims']


def write_config(cfg: Mapping, path: Union[str, os.PathLike],
                 header: str = '') -> None:
    """Write ``cfg`` as a dict-style MMAction2 config: ``key = value`` lines
    of plain Python literals, ``dict(...)`` style. A nested value that *is*
    (same object) an earlier top-level value is written as that variable's
    name, e.g. ``pipeline=test_pipeline``."""
    lines = [f'# {line}' for line in textwrap.wrap(header, 77)]
    names: Dict[int, str] = {}
    for key, value in cfg.items():
        lines.append(f'{key} = {_fmt(value, 0, names, lead=len(key) + 3)}')
        if isinstance(value, (dict, list)):
            names[id(value)] = key
    _makedirs_for(path)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


def _fmt(value, indent: int, names: Dict[int, str], flat: bool = False,
         lead: int = 0) -> str:
    """Python source for ``value``; one line when it fits in 79 columns."""
    if id(value) in names:
        return names[id(value)]
    if isinstance(value, dict):
        as_kwargs = all(isinstance(k, str) and k.isidentifier()
                        for k in value)
        items = [(f'{k}=' if as_kwargs else f'{k!r}: ', v)
                 for k, v in value.items()]
        brackets = ('dict(', ')') if as_kwargs else ('{', '}')
    elif isinstance(value, (list, tuple)):
        items = [('', v) for v in value]
        brackets = ('[', ']') if isinstance(value, list) else ('(', ')')
    else:
        return repr(value)
    trail = ',' if isinstance(value, tuple) and len(value) == 1 else ''
    one = (brackets[0] + ', '.join(p + _fmt(v, 0, names, True)
                                   for p, v in items) + trail + brackets[1])
    # ``lead``: characters before the value on its line; +1 for a comma.
    if flat or indent + lead + len(one) + 1 <= 79 or not items:
        return one
    pad = ' ' * (indent + 4)
    body = ',\n'.join(pad + p + _fmt(v, indent + 4, names, lead=len(p))
                      for p, v in items)
    return f'{brackets[0]}\n{body}{trail})' if brackets[1] == ')' \
        else f'{brackets[0]}\n{body}{trail}{brackets[1]}'


def save_checkpoint(state_dict: Mapping[str, torch.Tensor],
                    path: Union[str, os.PathLike],
                    meta: Optional[dict] = None) -> None:
    """Save an MMAction2 checkpoint ``{'meta': ..., 'state_dict': ...}``.

    Tensors are stored contiguous and fp32 (unless integer); ``meta`` must
    hold plain Python types (checked by a weights-only load on the way).
    """
    sd = {k: _to_saveable(v) for k, v in state_dict.items()}
    _makedirs_for(path)
    torch.save({'meta': dict(meta or {}), 'state_dict': sd}, path)
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
    recognizer that ``model_cfg`` builds.

    The recognizer is built on the ``meta`` device: nothing is allocated.
    """
    expected = expected_shapes(model_cfg)
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got)
                   if expected[k] != got[k])
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f'missing {missing[:8]}' +
                     (f' (+{len(missing) - 8} more)' if len(missing) > 8
                      else ''))
    if unexpected:
        parts.append(f'unexpected {unexpected[:8]}' +
                     (f' (+{len(unexpected) - 8} more)'
                      if len(unexpected) > 8 else ''))
    for k in wrong[:8]:
        parts.append(f'{k}: weights {list(got[k])} vs config '
                     f'{list(expected[k])}')
    raise ValueError(
        f'Config/weights mismatch: {source} do not fit the model that the '
        f'config describes ({type_name(model_cfg)}): ' + '; '.join(parts))


def type_name(model_cfg: dict) -> str:
    return str(model_cfg.get('backbone', {}).get('type', model_cfg['type']))


def expected_shapes(model_cfg: dict) -> Dict[str, Tuple[int, ...]]:
    """Parameter names and shapes (``backbone.*``, ``cls_head.*``) of the
    recognizer ``model_cfg`` describes, built on the ``meta`` device."""
    from mmaction.registry import MODELS
    from mmengine.registry import DefaultScope

    # The ViViT modules are registered: importing this package imported
    # vivit_mm (its parent) first.
    with torch.device('meta'), DefaultScope.overwrite_default_scope(
            'mmaction'):
        model = MODELS.build(copy.deepcopy(model_cfg))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if k.startswith(WEIGHT_PREFIXES)}


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


# ------------------------------------------------------------------- CLI
def add_test_config_args(parser) -> None:
    """The test-protocol options every converter CLI offers."""
    g = parser.add_argument_group('test config written beside the weights')
    g.add_argument('--num-clips', type=int, default=4,
                   help='temporal views (default: 4)')
    g.add_argument('--frame-interval', type=int, default=2,
                   help='frame stride of a clip (default: 2; 1 for SSv2/EK '
                   'as scenic trained them)')
    g.add_argument('--spatial-crops', type=int, choices=(1, 3), default=3,
                   help='3 = ThreeCrop, 1 = CenterCrop (default: 3)')
    g.add_argument('--test-scale', type=int, default=None,
                   help='short side before cropping (default: the crop '
                   'size with 3 crops, crop * 256 / 224 with 1)')
    g.add_argument('--ann-file', default='data/kinetics400/'
                   'kinetics400_val_list_videos.txt',
                   help='test annotation list for tools/test.py')
    g.add_argument('--data-prefix', default='data/kinetics400/videos_val',
                   help='test video folder for tools/test.py')


def test_config_kwargs(args) -> dict:
    """``recognizer_config`` keyword arguments from those CLI options."""
    return dict(num_clips=args.num_clips, frame_interval=args.frame_interval,
                three_crop=args.spatial_crops == 3,
                test_scale=args.test_scale, ann_file=args.ann_file,
                data_prefix=args.data_prefix)


def read_label_map(path: str) -> List[str]:
    """Class names, one per line (MMAction2's label map format)."""
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def write_label_map(names: Sequence[str], path: str) -> None:
    _makedirs_for(path)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{n}\n' for n in names))
