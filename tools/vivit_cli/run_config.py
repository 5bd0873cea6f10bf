"""What ``tools/train.py``'s flags add to a training config.

The shipped configs name every hook, wrapper and sampler a reliable run
needs (``configs/_base_/default_runtime.py``); for configs that do not,
:func:`apply_reliability_defaults` adds them, so any MMAction2 config gets
the same behaviour. Everything added is in the config the Runner dumps.
"""
from typing import List, Optional

from mmengine.config import Config, ConfigDict

#: Hooks every training run gets unless its config has them.
DEFAULT_HOOKS = ('WeightsOnlyCheckpointHook', 'NonFiniteLossHook',
                 'LoadCheckHook')


def _hooks(cfg: Config) -> List[dict]:
    """Every hook config of ``cfg``: ``default_hooks`` values, then
    ``custom_hooks``."""
    defaults = list((cfg.get('default_hooks', None) or {}).values())
    return [h for h in defaults + list(cfg.get('custom_hooks', None) or [])
            if isinstance(h, dict)]


def hook_types(cfg: Config) -> List[str]:
    """The ``type`` of every hook ``cfg`` names (default and custom)."""
    return [h.get('type') for h in _hooks(cfg)]


def _add_hook(cfg: Config, hook: dict) -> None:
    if hook['type'] not in hook_types(cfg):
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            ConfigDict(hook)]


def _drop_hook(cfg: Config, kind: str) -> None:
    defaults = cfg.get('default_hooks', None) or {}
    for key, hook in list(defaults.items()):
        if isinstance(hook, dict) and hook.get('type') == kind:
            defaults[key] = None
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', None) or []
                        if not (isinstance(h, dict)
                                and h.get('type') == kind)]


def _wrap_train_set(loader, wrapper: str) -> None:
    """Wrap ``loader.dataset`` in ``wrapper`` unless a wrapper of that type
    is already around it."""
    node = loader.dataset
    while isinstance(node, dict):
        if node.get('type') == wrapper:
            return
        node = node.get('dataset')
    loader.dataset = ConfigDict(type=wrapper, dataset=loader.dataset)


def apply_reliability_defaults(cfg: Config,
                               exact_resume: bool = True,
                               nonfinite_loss: Optional[str] = None,
                               skip_bad_videos: bool = False) -> Config:
    """Add the reliability machinery to a training config (in place).

    * ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
      ``AtomicCheckpointHook`` (same arguments).
    * ``WeightsOnlyCheckpointHook``, ``NonFiniteLossHook`` and
      ``LoadCheckHook`` are added unless configured; ``nonfinite_loss``
      (``'stop'``/``'skip'``) sets ``NonFiniteLossHook``'s action,
      overriding the config.
    * ``exact_resume``: ``ExactResumeHook`` is added unless configured, a
      ``DefaultSampler`` becomes a ``ResumableSampler`` and the training
      data set is wrapped in ``ReproducibleDataset``; ``exact_resume=False``
      removes the hook from the config.
    * ``skip_bad_videos``: the training data set is wrapped in
      ``SkipBadVideosDataset``; ``SkippedVideosHook`` is added whenever
      the training data set is such a wrapper.

    Returns:
        Config: ``cfg``.
    """
    if nonfinite_loss not in (None, 'stop', 'skip'):
        raise ValueError("nonfinite_loss must be None, 'stop' or 'skip', got "
                         f'{nonfinite_loss!r}.')
    hooks = cfg.get('default_hooks', None)
    if hooks and isinstance(hooks.get('checkpoint'), dict) \
            and hooks.checkpoint.get('type') == 'CheckpointHook':
        hooks.checkpoint.type = 'AtomicCheckpointHook'
    for hook in DEFAULT_HOOKS:
        _add_hook(cfg, dict(type=hook))
    if nonfinite_loss is not None:
        for h in _hooks(cfg):
            if h.get('type') == 'NonFiniteLossHook':
                h['action'] = nonfinite_loss
    loader = cfg.get('train_dataloader', None)
    has_set = loader is not None and isinstance(loader.get('dataset'), dict)
    if not exact_resume:
        _drop_hook(cfg, 'ExactResumeHook')
    else:
        _add_hook(cfg, dict(type='ExactResumeHook'))
        if has_set:
            sampler = loader.get('sampler')
            if isinstance(sampler, dict) \
                    and sampler.get('type') == 'DefaultSampler':
                sampler.type = 'ResumableSampler'
            _wrap_train_set(loader, 'ReproducibleDataset')
    if has_set and skip_bad_videos:
        _wrap_train_set(loader, 'SkipBadVideosDataset')
    if has_set and 'SkipBadVideosDataset' in _wrapper_types(loader.dataset):
        _add_hook(cfg, dict(type='SkippedVideosHook'))
    return cfg


def _wrapper_types(dataset) -> List[str]:
    types = []
    while isinstance(dataset, dict):
        types.append(dataset.get('type'))
        dataset = dataset.get('dataset')
    return types


def add_plain_param_groups_hook(cfg: Config) -> Config:
    """Add ``PlainParamGroupsHook`` to ``cfg.custom_hooks`` (in place) when
    ``cfg`` sets ``compile`` (mmengine's parameter groups of a
    ``paramwise_cfg`` are ``ConfigDict``s, which ``torch.compile`` cannot
    trace)."""
    if cfg.get('compile', None):
        _add_hook(cfg, dict(type='PlainParamGroupsHook'))
    return cfg


__all__ = ['apply_reliability_defaults', 'add_plain_param_groups_hook',
           'hook_types', 'DEFAULT_HOOKS']
