"""What the four ViViT variants share: arch zoo, option checks, tokeniser,
the ViT encoder unit (CLS token + position table + blocks + final norm),
pooling, stochastic depth and initialisation.

Subclasses differ only where the paper does: the attention sub-layers of a
block (:meth:`BaseViViT.attention_layout`) and, for Model 2, which encoders
run on which tokens (:meth:`BaseViViT._build_encoders`).
"""
import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...utils import checks
from ..utils.embed import TubeletEmbedding, UniformFrameEmbedding
from ..utils.transformer import (DEFAULT_ACT_CFG, DEFAULT_NORM_CFG,
                                 JOINT_ATTENTION, AttentionLayout,
                                 TransformerBlock, build_norm,
                                 drop_path_rates, norm_name)
from .outputs import check_out_indices, check_out_type, format_output
from .pos_tables import PosTablesMixin
from .stages import StagesMixin


@dataclass(frozen=True)
class Encoder:
    """One ViT encoder of a backbone: its parameters are the backbone's
    ``{prefix}cls_token``, ``{prefix}pos_embed``, ``{prefix}layers`` and
    ``{prefix}norm``.

    Attributes:
        prefix (str): ``''`` for the encoder that takes the image ViT's
            weights, e.g. ``'temporal_'`` for Model 2's temporal encoder.
        grid (tuple[int, int, int]): ``(n_t, n_h, n_w)`` of the tokens it
            sees (its position table has one entry per token, after the CLS
            entry).
        depth (int): Number of blocks.
        resize_time (bool): Whether a checkpoint's table may have another
            ``n_t`` (it is resized linearly over time when loaded).
        resize_space (bool): Whether it may have another ``(n_h, n_w)``
            (resized bicubically over space).
    """
    prefix: str
    grid: Tuple[int, int, int]
    depth: int
    resize_time: bool = True
    resize_space: bool = True

    def key(self, name: str) -> str:
        """The backbone's name of this encoder's ``name`` part."""
        return self.prefix + name


class BaseViViT(StagesMixin, PosTablesMixin, BaseModule):
    """Common base of ViViT backbones (Arnab et al., ICCV 2021).

    Input ``[B, C, T, H, W]`` (what MMAction2's ``Recognizer3D`` passes),
    output by default the pooled feature ``[B, D]``.

    Args:
        arch (str | dict): ``'b'``/``'base'``, ``'l'``/``'large'``,
            ``'h'``/``'huge'`` or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads`` and ``feedforward_channels``. Defaults to ``'b'``.
        img_size (int | tuple[int, int]): Input frame size. Defaults to 224.
        num_frames (int): Input frames T. Defaults to 32.
        patch_size (int | tuple[int, int]): Spatial patch size p.
            Defaults to 16.
        tubelet_size (int): Temporal extent t of a tubelet. Defaults to 2.
        tokenizer (str): ``'tubelet'`` (Conv3d, kernel = stride =
            ``(t, p, p)``) or ``'uniform'`` (uniform frame sampling: a 2D
            patch embedding per frame; needs ``tubelet_size=1``).
            Defaults to ``'tubelet'``.
        in_channels (int): Input channels. Defaults to 3.
        pooling (str, optional): ``'token'`` (a CLS token whose final output
            is the feature) or ``'gap'`` (no CLS token; the mean of the
            final-normed tokens). Defaults to the variant's own.
        qkv_bias (bool): Bias in q/k/v projections. Defaults to True.
        drop_rate (float): Dropout after the position embedding, after
            attention projections and in MLPs. Defaults to 0.
        attn_drop_rate (float): Dropout on attention probabilities.
            Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block; block
            ``l`` of ``L`` gets ``l / (L - 1) * drop_path_rate``.
            Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to GELU with the tanh
            approximation, as the official (flax) models.
        norm_cfg (dict): Normalisation. Defaults to LayerNorm, eps 1e-6.
        with_cp (bool): Activation checkpointing per block while training.
            Defaults to False.
        fused_attn (bool): Fused ``scaled_dot_product_attention`` (True) or
            the explicit formula (False, for tests). Defaults to True.
        frozen_stages (int): Freeze (no gradient, eval mode) the tokeniser,
            the CLS token and position table and the first
            ``frozen_stages`` blocks, numbered across the encoders (Model 2:
            spatial, then temporal); see :meth:`frozen_parts`. Defaults to
            0 (nothing frozen).
        out_type (str, optional): ``'cls_token'``, ``'avg_featmap'``,
            ``'featmap'`` or ``'raw'`` (see :mod:`.outputs`). Defaults to
            the pooled feature of ``pooling`` (``'cls_token'`` for
            ``'token'``, ``'avg_featmap'`` for ``'gap'``).
        out_indices (int | Sequence[int]): The blocks to output (``-1``:
            the last); an int gives one tensor, a sequence a tuple.
            Defaults to -1.
        interpolate_pos_embed (bool): Accept inputs of another number of
            frames or resolution (divisible by the tubelet and patch size)
            by resizing the position tables at run time, as they are
            resized when a checkpoint of another size is loaded. Defaults
            to False (such an input raises ``ValueError``).
        init_cfg (dict | list, optional): mmengine initialisation config,
            applied after the default initialisation (see
            :meth:`init_weights`).
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=768, num_layers=12, num_heads=12,
            feedforward_channels=3072)),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=1024, num_layers=24, num_heads=16,
            feedforward_channels=4096)),
        **dict.fromkeys(['h', 'huge'], dict(
            embed_dims=1280, num_layers=32, num_heads=16,
            feedforward_channels=5120)),
    }
    ESSENTIAL_KEYS = ('embed_dims', 'num_layers', 'num_heads',
                      'feedforward_channels')
    TOKENIZERS = ('tubelet', 'uniform')
    POOLINGS = ('token', 'gap')
    #: The paper's model number (section 3.3).
    paper_model: int = 0
    #: Pooling when the user gives none, and the poolings a variant accepts.
    default_pooling = 'token'
    allowed_poolings: Tuple[str, ...] = POOLINGS

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 num_frames: int = 32,
                 patch_size: Union[int, Tuple[int, int]] = 16,
                 tubelet_size: int = 2,
                 tokenizer: str = 'tubelet',
                 in_channels: int = 3,
                 pooling: Optional[str] = None,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0,
                 act_cfg: dict = DEFAULT_ACT_CFG,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 with_cp: bool = False,
                 fused_attn: bool = True,
                 frozen_stages: int = 0,
                 out_type: Optional[str] = None,
                 out_indices: Union[int, Sequence[int]] = -1,
                 interpolate_pos_embed: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        self.num_heads = self.arch_settings['num_heads']
        self.feedforward_channels = self.arch_settings['feedforward_channels']
        if self.embed_dims % self.num_heads != 0:
            raise ValueError(
                f'arch embed_dims ({self.embed_dims}) must be divisible by '
                f'num_heads ({self.num_heads}).')
        self._check_sizes(img_size, num_frames, patch_size, tubelet_size,
                          in_channels, tokenizer)
        self.tokenizer = tokenizer
        pooling = self.default_pooling if pooling is None else pooling
        if pooling not in self.allowed_poolings:
            raise ValueError(
                f'{type(self).__name__} accepts pooling in '
                f'{self.allowed_poolings}, got {pooling!r}.' +
                (' Its factorised attention has no CLS token (paper '
                 'section 3.3); use pooling=\'gap\'.'
                 if pooling == 'token' else ''))
        self.pooling = pooling
        self.drop_rate = checks.rate(drop_rate, 'drop_rate')
        self.attn_drop_rate = checks.rate(attn_drop_rate, 'attn_drop_rate')
        self.drop_path_rate = checks.rate(drop_path_rate, 'drop_path_rate')
        self.qkv_bias = checks.flag(qkv_bias, 'qkv_bias')
        self.act_cfg = copy.deepcopy(act_cfg)
        self.norm_cfg = copy.deepcopy(norm_cfg)
        self.with_cp = checks.flag(with_cp, 'with_cp')
        self.fused_attn = checks.flag(fused_attn, 'fused_attn')
        self.interpolate_pos_embed = checks.flag(interpolate_pos_embed,
                                                 'interpolate_pos_embed')
        where = type(self).__name__
        self.out_type = check_out_type(out_type, self.pooling, where)

        # [n_t, n_h, n_w]: the token grid.
        self.grid = (self.num_frames // self.tubelet_size,
                     self.img_size[0] // self.patch_size[0],
                     self.img_size[1] // self.patch_size[1])
        self.num_temporal_tokens = self.grid[0]
        self.num_spatial_tokens = self.grid[1] * self.grid[2]

        self.patch_embed = self._build_tokenizer()
        self.drop_after_pos = nn.Dropout(self.drop_rate)
        self.encoders: List[Encoder] = []
        self._build_encoders()
        self.out_indices, self._single_output = check_out_indices(
            out_indices, self.num_blocks, where)
        self.frozen_stages = self._check_frozen_stages(frozen_stages)
        self._freeze_stages()
        # A checkpoint made for another number of frames or resolution gets
        # its position tables resized when it is loaded (load_from,
        # load_checkpoint, load_state_dict), as mmpretrain's ViT does.
        self._register_load_state_dict_pre_hook(self._resize_pos_embeds)

    # ------------------------------------------------------------ building
    def _check_sizes(self, img_size, num_frames, patch_size, tubelet_size,
                     in_channels, tokenizer) -> None:
        self.img_size = checks.int_pair(img_size, 'img_size')
        self.patch_size = checks.int_pair(patch_size, 'patch_size')
        self.num_frames = checks.positive_int(num_frames, 'num_frames')
        self.tubelet_size = checks.positive_int(tubelet_size, 'tubelet_size')
        self.in_channels = checks.positive_int(in_channels, 'in_channels')
        for s, p, axis in zip(self.img_size, self.patch_size,
                              ('height', 'width')):
            if p <= 0 or s % p != 0:
                raise ValueError(
                    f'img_size {self.img_size} must be divisible by '
                    f'patch_size {self.patch_size} ({axis}: {s} % {p} != 0).')
        if self.num_frames % self.tubelet_size != 0:
            raise ValueError(
                f'num_frames ({self.num_frames}) must be divisible by '
                f'tubelet_size ({self.tubelet_size}).')
        if tokenizer not in self.TOKENIZERS:
            raise ValueError(f'Unknown tokenizer {tokenizer!r}; choose one of '
                             f'{self.TOKENIZERS}.')
        if tokenizer == 'uniform' and self.tubelet_size != 1:
            raise ValueError(
                "tokenizer='uniform' (uniform frame sampling) embeds each "
                f'frame on its own and needs tubelet_size=1, got '
                f'{self.tubelet_size}; use tokenizer=\'tubelet\' for t > 1.')

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """The four essential settings of ``arch`` (a zoo name or a dict)."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(
                    f'Unknown arch {arch!r}; choose one of '
                    f'{sorted(set(cls.arch_zoo))} or pass a dict with '
                    f'{cls.ESSENTIAL_KEYS}.')
            return dict(cls.arch_zoo[key])
        if isinstance(arch, dict):
            missing = [k for k in cls.ESSENTIAL_KEYS if k not in arch]
            if missing:
                raise ValueError(f'Custom arch dict is missing {missing}; it '
                                 f'needs {cls.ESSENTIAL_KEYS}.')
            for k in cls.ESSENTIAL_KEYS:
                checks.positive_int(arch[k], f'arch[{k!r}]')
            return {k: arch[k] for k in cls.ESSENTIAL_KEYS}
        raise ValueError(f'arch must be a str or a dict, got {arch!r}.')

    @classmethod
    def arch_name(cls, arch: Union[str, dict]) -> Union[str, dict]:
        """``'b'``, ``'l'`` or ``'h'`` when ``arch`` is that zoo entry, else
        its essential settings (for short, clear configs)."""
        settings = cls.parse_arch(arch)
        for name in ('b', 'l', 'h'):
            if cls.arch_zoo[name] == settings:
                return name
        return settings

    def _build_tokenizer(self) -> nn.Module:
        if self.tokenizer == 'uniform':
            return UniformFrameEmbedding(self.in_channels, self.embed_dims,
                                         self.patch_size)
        return TubeletEmbedding(self.in_channels, self.embed_dims,
                                self.patch_size, self.tubelet_size)

    def attention_layout(self) -> AttentionLayout:
        """The attention sub-layers of every block, in the order they run,
        as ``(name, head axes)`` (see :class:`TransformerBlock`). Joint
        attention over all tokens by default."""
        return JOINT_ATTENTION

    def _build_block(self, drop_path_rate: float) -> nn.Module:
        return TransformerBlock(
            embed_dims=self.embed_dims,
            num_heads=self.num_heads,
            feedforward_channels=self.feedforward_channels,
            drop_rate=self.drop_rate,
            attn_drop_rate=self.attn_drop_rate,
            drop_path_rate=drop_path_rate,
            qkv_bias=self.qkv_bias,
            act_cfg=self.act_cfg,
            norm_cfg=self.norm_cfg,
            fused_attn=self.fused_attn,
            attention=self.attention_layout(),
            grid=(self.num_temporal_tokens, self.num_spatial_tokens))

    @property
    def num_extra_tokens(self) -> int:
        """1 when a CLS token is prepended, else 0."""
        return int(self.pooling == 'token')

    def _add_encoder(self, encoder: Encoder) -> None:
        """Register one ViT encoder: ``{prefix}cls_token`` (with
        ``pooling='token'``), ``{prefix}pos_embed`` (one entry per token of
        ``encoder.grid``, time-major, after the CLS entry), ``{prefix}layers``
        and ``{prefix}norm``."""
        D, n = self.embed_dims, encoder.grid[0] * encoder.grid[1] * \
            encoder.grid[2]
        setattr(self, encoder.key('cls_token'),
                nn.Parameter(torch.zeros(1, 1, D))
                if self.pooling == 'token' else None)
        setattr(self, encoder.key('pos_embed'), nn.Parameter(
            torch.zeros(1, n + self.num_extra_tokens, D)))
        setattr(self, encoder.key('layers'), nn.ModuleList(
            self._build_block(r)
            for r in drop_path_rates(self.drop_path_rate, encoder.depth)))
        setattr(self, encoder.key('norm'), build_norm(self.norm_cfg, D))
        self.encoders.append(encoder)

    def _build_encoders(self) -> None:
        """One encoder over all ``n_t * n_h * n_w`` tokens (Models 1, 3,
        4)."""
        self._add_encoder(Encoder('', self.grid, self.num_layers))

    def extra_attention_keys(self) -> List[Tuple[str, str]]:
        """Modules of this variant's blocks that an image ViT block does not
        have, each with the image module it mirrors, e.g. Model 3's
        ``('layers.0.temporal_attn', 'layers.0.attn')`` and
        ``('layers.0.temporal_norm', 'layers.0.norm1')``; empty when the
        blocks are image ViT blocks (Models 1, 2, 4)."""
        names = [n for n, _ in self.attention_layout() if n != 'attn']
        return [(f'{e.key("layers")}.{i}.{extra}', f'layers.{i}.{image}')
                for e in self.encoders for i in range(e.depth)
                for name in names
                for extra, image in ((name, 'attn'),
                                     (norm_name(name), 'norm1'))]

    # ------------------------------------------------------------- forward
    def token_grid(self, x: torch.Tensor) -> Tuple[int, int, int]:
        """The ``(n_t, n_h, n_w)`` token grid of input ``x``
        ``[B, C, T, H, W]``, checked: the built ``grid``, or with
        ``interpolate_pos_embed`` that of any size the tubelet and patch
        divide (the grid of ``out_type='raw'`` tokens)."""
        C, T, H, W = (self.in_channels, self.num_frames, *self.img_size)
        t, (p_h, p_w) = self.tubelet_size, self.patch_size
        ok = x.dim() == 5 and x.shape[1] == C
        if self.interpolate_pos_embed:
            T, H, W = x.shape[2:] if ok else (0, 0, 0)
            if not (min(T, H, W) > 0 and T % t == H % p_h == W % p_w == 0):
                raise ValueError(
                    f'{type(self).__name__} (interpolate_pos_embed=True) '
                    f'expects input [B, {C}, T, H, W] with T divisible by '
                    f'tubelet_size {t} and H, W by patch_size '
                    f'{self.patch_size}, got {list(x.shape)}.')
        elif not ok or tuple(x.shape[2:]) != (T, H, W):
            raise ValueError(
                f'{type(self).__name__} expects input [B, C, T, H, W] = '
                f'[B, {C}, {T}, {H}, {W}], got {list(x.shape)}. Set the '
                "backbone's num_frames/img_size to match the pipeline "
                '(SampleFrames clip_len, crop size) and use '
                "FormatShape(input_format='NCTHW'), or build it with "
                'interpolate_pos_embed=True.')
        return T // t, H // p_h, W // p_w

    def _run_encoder(self, tokens: torch.Tensor, k: int,
                     grid: Tuple[int, int, int],
                     keep) -> Dict[int, torch.Tensor]:
        """Encoder ``k`` on ``[B', n, D]`` tokens on its token ``grid``:
        prepend the CLS token, add the position table, run the blocks up to
        the last one in ``keep`` (its local block indices). Returns the
        output ``[B', extra + n, D]`` of every block in ``keep``; the
        encoder's last block is read after its final norm."""
        encoder = self.encoders[k]
        cls_token = getattr(self, encoder.key('cls_token'))
        if cls_token is not None:
            tokens = torch.cat(
                [cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        x = tokens + self.pos_embed_at(k, grid)
        if not self.inputs_frozen(k):
            x = self.drop_after_pos(x)
        layers = getattr(self, encoder.key('layers'))
        # factorised attention on another grid than the built one
        block_grid = None if grid == encoder.grid \
            else (grid[0], grid[1] * grid[2])
        args = () if block_grid is None else (block_grid, )
        use_cp = self.with_cp and self.training and torch.is_grad_enabled()
        outs = {}
        for i in range(max(keep) + 1):
            x = checkpoint(layers[i], x, *args, use_reentrant=False) \
                if use_cp else layers[i](x, *args)
            if i == encoder.depth - 1:
                x = getattr(self, encoder.key('norm'))(x)
            if i in keep:
                outs[i] = x
        return outs

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """``[B', extra + n, D] -> [B', D]``: the CLS token, or the mean."""
        return x[:, 0] if self.num_extra_tokens else x.mean(dim=1)

    def _forward_blocks(self, tokens: torch.Tensor,
                        grid: Tuple[int, int, int], wanted):
        """``[B, n_t, n_s, D]`` tokens -> ``{block: (x, repeats, grid)}``
        for the blocks in ``wanted`` (see :func:`.outputs.format_output`).
        One encoder over all tokens; Model 2 overrides it."""
        outs = self._run_encoder(tokens.flatten(1, 2), 0, grid, wanted)
        return {i: (x, 1, grid) for i, x in outs.items()}

    def forward_outputs(self, x: torch.Tensor, out_type: Optional[str] = None,
                        out_indices=None):
        """The backbone's outputs for ``out_type`` and ``out_indices``
        (None: the ones it was built with; see :mod:`.outputs`) on
        ``[B, C, T, H, W]`` input. Only the blocks up to the last one asked
        for run."""
        where = type(self).__name__
        out_type = self.out_type if out_type is None \
            else check_out_type(out_type, self.pooling, where)
        indices, single = (self.out_indices, self._single_output) \
            if out_indices is None \
            else check_out_indices(out_indices, self.num_blocks, where)
        grid = self.token_grid(x)
        tokens = self.patch_embed(x)  # [B, n_t, n_s, D]
        blocks = self._forward_blocks(tokens, grid, set(indices))
        outs = tuple(
            format_output(blocks[i][0], tokens.shape[0], blocks[i][1],
                          blocks[i][2], self.num_extra_tokens, out_type)
            for i in indices)
        return outs[0] if single else outs

    def forward(self, x: torch.Tensor):
        """``[B, C, T, H, W]`` -> by default the pooled feature ``[B, D]``
        (see ``out_type`` and ``out_indices``)."""
        return self.forward_outputs(x)

    # ---------------------------------------------------------------- init
    def _init_pretrained(self) -> bool:
        """Whether ``init_cfg`` loads a checkpoint (``type='Pretrained'``)."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) \
            else [self.init_cfg]
        return any(isinstance(c, dict) and c.get('type') == 'Pretrained'
                   for c in cfgs)

    def init_weights(self) -> None:
        """Scenic's ViT initialisation: position embeddings N(0, 0.02)
        (truncated), CLS tokens zero, linear kernels Xavier-uniform with
        zero biases (MLP biases N(0, 1e-6)), patch embedding LeCun-normal,
        LayerNorm 1/0.

        An ``init_cfg`` is applied after it, so initialisers such as
        ``dict(type='TruncNormal', layer='Linear', std=0.02)`` replace the
        default only for the layers they name; with ``type='Pretrained'``
        the checkpoint is loaded instead of the default initialisation.
        """
        if not self._init_pretrained():
            self._init_default()
        if self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    def _init_default(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    if name.endswith(('fc1', 'fc2')):
                        nn.init.normal_(m.bias, std=1e-6)
                    else:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
                fan_in = m.weight[0].numel()
                trunc_normal_(m.weight, std=(1.0 / fan_in)**0.5)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith('pos_embed'):
                trunc_normal_(p, std=0.02)
            elif name.endswith('cls_token'):
                nn.init.zeros_(p)
