"""The blocks of a ViViT backbone as one sequence of stages: which are
frozen (``frozen_stages``) and how deep each parameter sits
(``get_layer_depth``, for layer-wise learning-rate decay), with mmpretrain's
``VisionTransformer`` meaning.

The blocks are numbered across the backbone's encoders in the order they
run: Models 1, 3 and 4 have one encoder (blocks ``0 .. num_layers - 1``);
Model 2's spatial blocks come first, then its temporal ones
(``num_layers .. num_layers + num_temporal_layers - 1``).
"""
from typing import List, Tuple

from torch import nn

from ...utils import checks


class StagesMixin:
    """``frozen_stages``, ``train()`` that keeps frozen parts in eval mode,
    and ``get_layer_depth`` for :class:`~.base.BaseViViT`."""

    @property
    def num_blocks(self) -> int:
        """All blocks of all encoders."""
        return sum(e.depth for e in self.encoders)

    def _first_blocks(self) -> List[int]:
        """The global index of each encoder's first block."""
        firsts, n = [], 0
        for encoder in self.encoders:
            firsts.append(n)
            n += encoder.depth
        return firsts

    # ----------------------------------------------------------- freezing
    def _check_frozen_stages(self, frozen_stages) -> int:
        """``frozen_stages`` as an int in ``[0, num_blocks]``."""
        parts = [f'{e.depth} {e.prefix.rstrip("_") or "spatial"}'
                 for e in self.encoders]
        blocks = ' + '.join(parts) if len(parts) > 1 else parts[0].split()[0]
        return checks.int_in_range(
            frozen_stages, 'frozen_stages', 0, self.num_blocks,
            hint=f' (0 freezes nothing; {type(self).__name__} has {blocks} '
            'blocks)')

    def inputs_frozen(self, k: int) -> bool:
        """Whether encoder ``k``'s CLS token and position table are frozen:
        the first encoder's (with the tokeniser) when ``frozen_stages > 0``,
        a later encoder's (Model 2's temporal one) when its first block
        is."""
        first = self._first_blocks()[k]
        return self.frozen_stages > first if k else self.frozen_stages > 0

    def frozen_parts(self) -> Tuple[List[nn.Module], List[nn.Parameter]]:
        """The modules (kept in eval mode) and the loose parameters (CLS
        tokens, position tables) that ``frozen_stages`` freezes: with
        ``frozen_stages = n > 0`` the tokeniser, the first encoder's CLS
        token and position table, the first ``n`` blocks, the final norm of
        every encoder whose blocks are all frozen, and a later encoder's
        CLS token and table when its first block is frozen."""
        modules, params = [], []
        if self.frozen_stages == 0:
            return modules, params
        modules.append(self.patch_embed)
        for k, (encoder, first) in enumerate(zip(self.encoders,
                                                 self._first_blocks())):
            n = min(max(self.frozen_stages - first, 0), encoder.depth)
            if self.inputs_frozen(k):
                params += [p for p in (getattr(self, encoder.key(name))
                                       for name in ('cls_token', 'pos_embed'))
                           if p is not None]
            modules += list(getattr(self, encoder.key('layers'))[:n])
            if n == encoder.depth:
                modules.append(getattr(self, encoder.key('norm')))
        return modules, params

    def _freeze_stages(self) -> None:
        modules, params = self.frozen_parts()
        for m in modules:
            m.eval()
            params += list(m.parameters())
        for p in params:
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but the frozen parts stay in eval mode,
        so that dropout and stochastic depth do not act on them."""
        super().train(mode)
        for m in self.frozen_parts()[0]:
            m.eval()
        return self

    # ------------------------------------------------------ layer depth
    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """The layer depth of a parameter, as mmpretrain's
        ``VisionTransformer.get_layer_depth`` (what its
        ``LearningRateDecayOptimWrapperConstructor`` uses).

        ``num_layers = num_blocks + 2``. The tokeniser and the first
        encoder's CLS token and position table are at depth 0, block ``i``
        (numbered across the encoders, see the module docstring) at
        ``i + 1``; the last encoder's final norm and every name outside
        ``prefix`` (the head) at ``num_layers - 1``. A part between two
        encoders (Model 2's spatial final norm and the temporal CLS token
        and position table) is at the depth of the next encoder's first
        block, so depths rise from the tokeniser through the spatial, then
        the temporal blocks to the head. Model 3's temporal attention is
        part of its block.

        Args:
            param_name (str): The parameter's name, e.g.
                ``'backbone.layers.3.attn.qkv.weight'``.
            prefix (str): The backbone's prefix in ``param_name``, e.g.
                ``'backbone.'``.

        Returns:
            tuple[int, int]: ``(layer_depth, num_layers)``.
        """
        num_layers = self.num_blocks + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers  # the head, or after it
        name = param_name[len(prefix):]
        if name.startswith('patch_embed.'):
            return 0, num_layers
        firsts = self._first_blocks()
        for k, (encoder, first) in enumerate(zip(self.encoders, firsts)):
            layers = encoder.key('layers') + '.'
            if name.startswith(layers):
                return first + int(name[len(layers):].split('.')[0]) + 1, \
                    num_layers
            if name in (encoder.key('cls_token'), encoder.key('pos_embed')):
                return (first + 1 if k else 0), num_layers
            if name.startswith(encoder.key('norm') + '.') \
                    and k + 1 < len(self.encoders):
                return firsts[k + 1] + 1, num_layers
        return num_layers - 1, num_layers
