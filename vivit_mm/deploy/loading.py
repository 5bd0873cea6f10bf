"""Load a ViViT recognizer for deployment, after checking that the config
describes a ViViT recognizer; a checkpoint that does not fit it (names and
shapes) is refused by the model's own load checks
(:mod:`vivit_mm.models.utils.load_checks`), instead of mmengine's
non-strict load leaving random weights in place."""
import os
from typing import List, Optional

from mmengine.config import Config


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read ``config`` (a file), apply ``cfg_options`` and check that its
    ``model`` is a recognizer with a ViViT backbone (``ValueError`` or
    ``FileNotFoundError`` naming the problem otherwise)."""
    path = os.path.expanduser(os.fspath(config))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Config file {path!r} does not exist.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = cfg.get('model')
    if not isinstance(model, dict) or not isinstance(
            model.get('backbone'), dict):
        raise ValueError(f'Config {path!r} has no model.backbone: it does '
                         'not describe a recognizer.')
    backbone_class(model['backbone'].get('type'), path)
    if not isinstance(model.get('cls_head'), dict):
        raise ValueError(f'Config {path!r} has no model.cls_head: the '
                         'deployment tools need a classification head.')
    return cfg


def backbone_class(kind, where: str = 'the config'):
    """The registered class of backbone type ``kind``; ``ValueError``
    unless it is a ViViT backbone (a :class:`BaseViViT` subclass)."""
    import vivit_mm  # noqa: F401  (registers the ViViT modules)
    from mmaction.registry import MODELS
    from mmengine.registry import DefaultScope

    from ..models.backbones.base import BaseViViT
    vivits = sorted(n for n, c in MODELS.module_dict.items()
                    if isinstance(c, type) and issubclass(c, BaseViViT))
    with DefaultScope.overwrite_default_scope('mmaction'):
        cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, BaseViViT)):
        raise ValueError(
            f'{where}: model.backbone.type is {kind!r}, not a ViViT '
            f'backbone; the deployment tools support {vivits}.')
    return cls


def load_recognizer(config: str, checkpoint: str,
                    cfg_options: Optional[dict] = None,
                    device: str = 'cpu'):
    """The recognizer of ``config`` (checked by :func:`load_config`) with
    the weights of ``checkpoint``, on ``device``, in eval mode.

    The file is refused before it is unpickled if it names globals a
    weights-only load refuses (``ValueError``), then loaded through the
    model's load checks (:mod:`vivit_mm.models.utils.load_checks`): a
    checkpoint that does not fit is refused with a
    ``CheckpointMisfitError`` (a ``ValueError``) that names the file and
    the likely cause; position tables made for another number of frames or
    resolution are resized."""
    from mmaction.apis import init_recognizer
    from mmengine.runner import load_checkpoint

    from ..convert.io import disallowed_globals, refusal_message
    from ..models.utils.load_checks import configure_load_checks
    cfg = load_config(config, cfg_options)
    path = os.path.expanduser(os.fspath(checkpoint))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file {path!r} does not exist.')
    if disallowed_globals(path):
        raise ValueError(refusal_message(path))
    model = init_recognizer(cfg, None, device='cpu')
    configure_load_checks(model, source=f'Checkpoint {path!r}')
    load_checkpoint(model, path, map_location='cpu')
    return model.to(device)


def read_label_map(path: str,
                   num_classes: Optional[int] = None) -> List[str]:
    """Class names, one per line (MMAction2's label map format, read by
    mmengine's ``list_from_file``; surrounding blanks and empty lines are
    dropped); with ``num_classes``, a ``ValueError`` unless there are that
    many."""
    from mmengine.fileio import list_from_file
    names = [line.strip() for line in list_from_file(os.path.expanduser(path))
             if line.strip()]
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f'--label-map {path!r} has {len(names)} class names '
                         f'but the model predicts {num_classes} classes.')
    return names


def class_names(model, label_map: Optional[str] = None,
                meta: Optional[dict] = None) -> List[str]:
    """The class names of a recognizer (``init_recognizer``'s, with
    ``cfg``): ``label_map``'s, else the checkpoint's
    (``meta['dataset_meta']['classes']``) or the config's ``label_names``
    when they fit the head, else the indices as strings."""
    num_classes = model.cfg.model.cls_head.num_classes
    if label_map:
        return read_label_map(label_map, num_classes)
    dataset_meta = (meta or {}).get('dataset_meta') or {}
    for names in (dataset_meta.get('classes'),
                  model.cfg.get('label_names')):
        if names and len(names) == num_classes:
            return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


__all__ = ['load_config', 'backbone_class', 'load_recognizer',
           'read_label_map', 'class_names']
