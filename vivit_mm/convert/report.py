"""Where every parameter of a model came from when a checkpoint was mapped
onto it: :class:`InflationReport` (returned by
:func:`vivit_mm.inflate_image_weights` and logged as a table)."""
import re
import textwrap
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Sequence


@dataclass
class InflationReport:
    """Where every parameter of an inflated backbone came from.

    Attributes:
        layout (str): ``'mmpretrain'``, ``'timm'`` or ``'flax'``.
        loaded (list[str]): Backbone keys copied unchanged.
        inflated (list[str]): Backbone keys derived from image weights
            (tiled position embedding, inflated tubelet filter, copies into
            temporal attention or a temporal encoder).
        resized (list[str]): Backbone keys whose spatial grid was resized.
            A key can be both inflated and resized.
        new (list[str]): Backbone keys not taken from the image model: left
            as initialised, or set to a fixed value (see ``notes``).
        unused (list[str]): Checkpoint keys not used (the head, keys that
            ``tubelet_init='random'`` or ``pooling='gap'`` leave out ...).
        notes (dict[str, str]): Backbone key -> how it was set.
        unused_notes (dict[str, str]): Unused checkpoint key -> why.
    """
    layout: str
    loaded: List[str] = field(default_factory=list)
    inflated: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    new: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    notes: Dict[str, str] = field(default_factory=OrderedDict)
    unused_notes: Dict[str, str] = field(default_factory=OrderedDict)

    CATEGORIES = ('loaded', 'inflated', 'resized', 'new', 'unused')

    def table(self, width: int = 100) -> str:
        """A short text table: one row per category, layer indices folded
        (``layers.{0-11}.norm1.{weight,bias}``), then the notes."""
        rows = [(c, len(getattr(self, c)), fold_keys(getattr(self, c)))
                for c in self.CATEGORIES]
        head = f'Image ViT ({self.layout}) -> ViViT: parameter report'
        wrap = width - 22
        lines = [head, '-' * width]
        for name, n, keys in rows:
            chunks = textwrap.wrap(keys, wrap) or ['-']
            lines.append(f'{name:<10}| {n:>5} | {chunks[0]}')
            lines += [f'{"":<10}| {"":>5} | {c}' for c in chunks[1:]]
        lines.append('-' * width)
        for title, notes in (('backbone', self.notes),
                             ('unused checkpoint keys', self.unused_notes)):
            grouped: Dict[str, List[str]] = OrderedDict()
            for key, note in notes.items():
                grouped.setdefault(note, []).append(key)
            if grouped:
                lines.append(f'{title}:')
            for note, keys in grouped.items():
                lines += textwrap.wrap(f'{fold_keys(keys)}: {note}', width,
                                       initial_indent='  ',
                                       subsequent_indent='      ')
        return '\n'.join(lines)

    def __str__(self) -> str:
        return self.table()


def fold_keys(keys: Sequence[str]) -> str:
    """``layers.0.x.weight, layers.1.x.weight, layers.0.x.bias ...`` ->
    ``layers.{0-1}.x.{weight,bias}``, in first-seen order."""
    by_pattern: Dict[str, List[int]] = OrderedDict()
    for k in keys:
        m = re.search(r'layers\.(\d+)\.', k)
        pattern = k if m is None else \
            k[:m.start(1)] + '{}' + k[m.end(1):]
        by_pattern.setdefault(pattern, []).append(
            -1 if m is None else int(m.group(1)))
    folded: Dict[str, None] = OrderedDict()
    for pattern, idx in by_pattern.items():
        if idx == [-1]:
            folded[pattern] = None
            continue
        idx = sorted(set(idx))
        span = (str(idx[0]) if len(idx) == 1 else
                f'{{{idx[0]}-{idx[-1]}}}'
                if idx == list(range(idx[0], idx[-1] + 1))
                else '{' + ','.join(map(str, idx)) + '}')
        folded[pattern.replace('{}', span)] = None
    by_stem: Dict[str, List[str]] = OrderedDict()
    for k in folded:
        stem, _, leaf = k.rpartition('.')
        if leaf in ('weight', 'bias') and stem:
            by_stem.setdefault(stem, []).append(leaf)
        else:
            by_stem.setdefault(k, [])
    out = [s if not leaves else
           (f'{s}.{leaves[0]}' if len(leaves) == 1 else
            f'{s}.{{{",".join(leaves)}}}')
           for s, leaves in by_stem.items()]
    return ', '.join(out)


__all__ = ['InflationReport', 'fold_keys']
