"""Does a checkpoint fit this model? One home for the answer and its message.

:func:`register_fit_check` adds a load-time pre-hook (torch's public
``register_load_state_dict_pre_hook``) to the ViViT backbone and head, so
every path that loads weights into them (the Runner's ``load_from``,
mmengine's ``load_checkpoint``, MMAction2's ``init_recognizer``,
``load_state_dict``) compares the weights it receives with the module's own
names and shapes, after the backbone's position tables were resized.

* A module whose weights were not initialised by ``init_weights`` (testing,
  inference: the Runner's ``test()``/``val()``, ``init_recognizer`` and the
  tools never call it) refuses a checkpoint that does not fit with a
  :class:`CheckpointMisfitError` naming the counts of missing, unexpected and
  mismatched keys, a few names, and the likely cause.
* A module initialised by ``init_weights`` (``Runner.train()`` initialises,
  then loads ``load_from``/``resume``) is being trained: the head keeps its
  fresh initialisation where the checkpoint does not fit (fine-tuning on
  another class count), with one log line. The backbone still refuses unless
  ``LoadCheckHook(allow_backbone_misfit=True)`` allows it.

:func:`compare` and :func:`misfit_message` also serve the tools' checks of
a checkpoint file against a config (``vivit_mm.convert.recognizer``).
"""
import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from mmengine.logging import print_log

Shapes = Mapping[str, Tuple[int, ...]]
#: Attribute of a checked module holding its policy (set by
#: :func:`configure_load_checks`).
POLICY_ATTR = '_vivit_load_policy'
#: How many names of each kind a message shows.
SHOWN = 4


class CheckpointMisfitError(ValueError):
    """A checkpoint does not fit the model it is loaded into."""


@dataclass
class Misfit:
    """Keys of a checkpoint that do not fit a model."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    #: ``(key, checkpoint shape, model shape)``.
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)


def compare(expected: Shapes, got: Shapes) -> Misfit:
    """The keys of ``got`` (a checkpoint's names and shapes) that do not fit
    ``expected`` (the model's)."""
    return Misfit(
        missing=sorted(set(expected) - set(got), key=_natural),
        unexpected=sorted(set(got) - set(expected), key=_natural),
        mismatched=[(k, tuple(got[k]), tuple(expected[k]))
                    for k in sorted(set(expected) & set(got), key=_natural)
                    if tuple(got[k]) != tuple(expected[k])])


def _natural(key: str):
    return [int(s) if s.isdigit() else s for s in re.split(r'(\d+)', key)]


def _few(keys: List[str], prefix: str) -> str:
    shown = ', '.join(prefix + k for k in keys[:SHOWN])
    return shown + (', ...' if len(keys) > SHOWN else '')


def describe(misfit: Misfit, prefix: str = '') -> str:
    """``'2 missing keys (a, b), 1 with another shape (c: checkpoint [..],
    model [..])'``."""
    parts = []
    for n, keys in (('missing', misfit.missing),
                    ('unexpected', misfit.unexpected)):
        if keys:
            parts.append(f'{len(keys)} {n} key{"s" * (len(keys) != 1)} '
                         f'({_few(keys, prefix)})')
    if misfit.mismatched:
        shown = '; '.join(f'{prefix}{k}: checkpoint {list(c)}, model '
                          f'{list(m)}' for k, c, m in
                          misfit.mismatched[:SHOWN])
        parts.append(f'{len(misfit.mismatched)} of another shape ({shown}'
                     + ('; ...' if len(misfit.mismatched) > SHOWN else '')
                     + ')')
    return ', '.join(parts)


def _ending(shapes: Shapes, suffix: str) -> Dict[str, tuple]:
    return {k: tuple(v) for k, v in shapes.items()
            if k == suffix or k.endswith('.' + suffix)}


def _depths(shapes: Shapes) -> Dict[str, int]:
    """``{'layers': 12, 'temporal_layers': 4}``: blocks per layer list."""
    depths: Dict[str, int] = {}
    for k in shapes:
        m = re.match(r'^(.*?layers)\.(\d+)\.', k)
        if m:
            depths[m[1]] = max(depths.get(m[1], 0), int(m[2]) + 1)
    return depths


def _components(ours: Shapes, theirs: Shapes) -> List[str]:
    """The shortest names (layer indices as ``*``) that ``ours`` has and
    ``theirs`` lacks, e.g. ``temporal_layers`` or
    ``layers.*.temporal_attn``."""
    def pattern(k):
        return re.sub(r'(?<=\.)\d+(?=\.)|^\d+(?=\.)', '*', k)
    their_prefixes = set()
    for k in map(pattern, theirs):
        parts = k.split('.')
        their_prefixes.update('.'.join(parts[:i + 1])
                              for i in range(len(parts)))
    found = []
    for k in sorted(set(map(pattern, ours))):
        parts = k.split('.')
        for i in range(len(parts)):
            name = '.'.join(parts[:i + 1])
            if name not in their_prefixes:
                if name not in found:
                    found.append(name)
                break
    return found


def likely_causes(expected: Shapes, got: Shapes) -> List[str]:
    """What a checkpoint ``got`` likely differs in from the model
    ``expected``: width, class count, tokeniser, depth, variant."""
    if not got:
        return ['it holds no weights for this part (another model, or '
                'keys under another prefix)']
    causes = []
    for suffix in ('fc_cls.weight', ):
        for k, m in _ending(expected, suffix).items():
            c = tuple(got.get(k, m))
            if len(c) == 2 and c[0] != m[0]:
                causes.append(f'another class count: {c[0]} classes in the '
                              f'checkpoint, {m[0]} in this model '
                              '(model.cls_head.num_classes)')
            if len(c) == 2 and c[1] != m[1]:
                causes.append(f'another width: features of {c[1]} channels '
                              f'in the checkpoint, {m[1]} here (in_channels)')
    widths = {(tuple(got[k])[0], m[0])
              for k, m in _ending(expected, 'norm.weight').items()
              if k in got and tuple(got[k]) != m}
    for c, m in sorted(widths)[:1]:
        causes.append(f'another width: embed_dims {c} in the checkpoint, '
                      f'{m} here (another arch, e.g. ViViT-L vs ViViT-B)')
    for k, m in _ending(expected, 'patch_embed.projection.weight').items():
        c = tuple(got.get(k, m))
        if len(c) != len(m):
            causes.append('another tokeniser (tubelets vs uniform frame '
                          'sampling)')
        elif len(m) == 5 and c[2] != m[2]:
            causes.append(f'another tubelet size or frame count: tubelets '
                          f'of {c[2]} frames in the checkpoint, {m[2]} here')
        elif c[-2:] != m[-2:]:
            causes.append(f'another patch size: {list(c[-2:])} in the '
                          f'checkpoint, {list(m[-2:])} here')
    for k, m in _ending(expected, 'pos_embed').items():
        c = tuple(got.get(k, m))
        if c != m and c[-1:] == m[-1:] and not causes:
            causes.append(f'another frame count or resolution: {k} has '
                          f'{c[1]} entries in the checkpoint, {m[1]} here')
    dm, dc = _depths(expected), _depths(got)
    for name in sorted(set(dm) & set(dc)):
        if dm[name] != dc[name]:
            causes.append(f'another depth: {dc[name]} blocks in {name} of '
                          f'the checkpoint, {dm[name]} here')
    only_c, only_m = _components(got, expected), _components(expected, got)
    if only_c or only_m:
        sides = ([f'only the checkpoint has {", ".join(only_c[:SHOWN])}']
                 if only_c else []) + \
            ([f'only this model has {", ".join(only_m[:SHOWN])}']
             if only_m else [])
        causes.append('another variant or pooling (' + '; '.join(sides)
                      + ')')
    return causes or ['another model']


def misfit_message(misfit: Misfit, expected: Shapes, got: Shapes,
                   what: str, source: Optional[str] = None,
                   prefix: str = '') -> str:
    """The whole refusal: what does not fit, the likely cause and the fix.

    Args:
        misfit (Misfit): :func:`compare` of ``expected`` and ``got``.
        expected, got: The model's and the checkpoint's names and shapes.
        what (str): The model part, e.g. ``'the ViViTM2 backbone'``.
        source (str, optional): The checkpoint (a file name). Defaults to
            ``'The checkpoint'``.
        prefix (str): Shown before the keys, e.g. ``'backbone.'``.
    """
    causes = likely_causes(expected, got)
    head_only = all('class count' in c for c in causes)
    fix = ('Test or infer with the config the checkpoint was trained with '
           '(its model.cls_head.num_classes); to fine-tune it on other '
           'classes, train with load_from: the head then starts anew.'
           if head_only else
           'Use the config the checkpoint was trained or converted with '
           '(tools/convert/ converts official and HuggingFace weights); to '
           'start training from a checkpoint that only partly fits, set '
           'default_hooks.load_check.allow_backbone_misfit=True '
           '(docs/reliability.md).')
    return (f'{source or "The checkpoint"} does not fit {what}: '
            f'{describe(misfit, prefix)}. Likely cause: '
            f'{"; ".join(causes)}. {fix}')


def _shapes(tensors: Mapping) -> Dict[str, tuple]:
    return {k: tuple(getattr(v, 'shape', ())) for k, v in tensors.items()}


def _check_fit(module, state_dict, prefix, *args, part: str) -> None:
    """Load-time pre-hook (see the module docstring)."""
    own = module.state_dict()
    got = {k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix)}
    expected, got_shapes = _shapes(own), _shapes(got)
    misfit = compare(expected, got_shapes)
    if not misfit:
        return
    policy = getattr(module, POLICY_ATTR, None) or {}
    training = bool(getattr(module, '_is_init', False))
    name = type(module).__name__
    what = f'the {name} {part}' + (f' ({prefix[:-1]})' if prefix else '')
    allowed = training and (part == 'head'
                            or policy.get('allow_backbone_misfit', False))
    if not allowed:
        raise CheckpointMisfitError(misfit_message(
            misfit, expected, got_shapes, what, policy.get('source'),
            prefix))
    # Training: keep this module's initialised values where the checkpoint
    # does not fit, so that nothing else reports the same keys again.
    for k in misfit.missing + [k for k, _, _ in misfit.mismatched]:
        state_dict[prefix + k] = own[k]
    for k in misfit.unexpected:
        del state_dict[prefix + k]
    cause = '; '.join(likely_causes(expected, got_shapes))
    print_log(f'{name}: {cause}: the {part} keeps its initialisation where '
              f'the checkpoint does not fit ({describe(misfit, prefix)}); '
              f'the rest is loaded.' if part != 'head' else
              f'{name}: the head is new ({cause}); it starts from its '
              'initialisation, the rest of the checkpoint is loaded '
              '(fine-tuning).', logger='current', level=logging.WARNING)


def register_fit_check(module, part: str) -> None:
    """Check every checkpoint loaded into ``module`` (``part``:
    ``'backbone'`` or ``'head'``); register it after the pre-hooks that
    adapt a checkpoint (the position table resize)."""
    if part not in ('backbone', 'head'):
        raise ValueError(f"part must be 'backbone' or 'head', got {part!r}.")
    module.register_load_state_dict_pre_hook(
        functools.partial(_check_fit, part=part))
    setattr(module, POLICY_ATTR, {})


def configure_load_checks(model, source: Optional[str] = None,
                          allow_backbone_misfit: Optional[bool] = None
                          ) -> int:
    """Set the checks of every checked module of ``model``: ``source``
    names the checkpoint in refusals, ``allow_backbone_misfit`` lets a
    backbone being trained take a checkpoint that only partly fits.
    Returns the number of checked modules."""
    n = 0
    for m in model.modules():
        policy = getattr(m, POLICY_ATTR, None)
        if policy is None:
            continue
        n += 1
        policy['source'] = source
        if allow_backbone_misfit is not None:
            policy['allow_backbone_misfit'] = bool(allow_backbone_misfit)
    return n


__all__ = ['CheckpointMisfitError', 'Misfit', 'compare', 'describe',
           'likely_causes', 'misfit_message', 'register_fit_check',
           'configure_load_checks']
