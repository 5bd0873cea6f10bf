"""The models the benchmark measures, each as a :class:`Case`: the ViViT
variants (``configs/_base_/models/vivit_m{1,2,3,4}.py``) or a config's
backbone at the run's shape, HuggingFace's ``VivitModel`` and MMAction2's
``TimeSformer``."""
import copy
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from vivit_mm.utils.build import build_model
from vivit_mm.utils.complexity import backbone_input_shape, count_macs

from .settings import CONFIG_DIR, Settings, variant_names
Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]
NamedCfg = Tuple[str, dict]


class Case:
    """A model, its input and how to get its ``[B, D]`` feature.

    Args:
        name (str): Row name in the report.
        model (nn.Module): The model.
        x (torch.Tensor): Its input.
        forward (callable, optional): ``forward(model, x)``; defaults to
            ``model(x)``.
        macs (int, optional): Multiply-accumulates of one forward pass.
        cfg (dict, optional): The backbone config ``model`` was built from
            (a child process rebuilds it to measure peak RSS).
    """

    def __init__(self, name: str, model: nn.Module, x: torch.Tensor,
                 forward: Optional[Forward] = None,
                 macs: Optional[int] = None,
                 cfg: Optional[dict] = None) -> None:
        self.name, self.model, self.x = name, model, x
        self.macs, self.cfg = macs, cfg
        self._forward = forward or (lambda m, inp: m(inp))

    def forward(self) -> torch.Tensor:
        """The model's feature of the input."""
        return self._forward(self.model, self.x)

    def infer(self) -> None:
        """One forward pass without autograd."""
        with torch.no_grad():
            self.forward()

    def train_step(self) -> None:
        """Forward, sum loss, backward; gradients dropped (no optimizer)."""
        for p in self.model.parameters():
            p.grad = None
        self.forward().float().sum().backward()


# ---------------------------------------------------------------- configs
def backbone_cfg(cfg: dict, s: Settings, frames: Optional[int],
                 img_size: Optional[int], **overrides) -> dict:
    """A copy of backbone config ``cfg`` with the run's width, depth,
    patch and tubelet, at ``frames`` x ``img_size`` (None: ``cfg``'s)."""
    from vivit_mm.models import BaseViViT
    cfg = copy.deepcopy(cfg)
    arch = cfg.get('arch', 'b')
    arch = BaseViViT.parse_arch(arch) if isinstance(arch, str) \
        else dict(arch)
    arch.update(s.arch or {})
    if s.layers:
        arch['num_layers'] = s.layers
    cfg['arch'] = arch
    if frames:
        cfg['num_frames'] = frames
    if img_size:
        cfg['img_size'] = img_size
    if s.patch_size:
        cfg['patch_size'] = s.patch_size
    if s.tubelet_size:
        cfg['tubelet_size'] = s.tubelet_size
    cfg.setdefault('patch_size', 16)
    cfg.update(overrides)
    return cfg


def load_backbone(path) -> dict:
    """``model.backbone`` of the config file at ``path``."""
    from mmengine import Config
    return Config.fromfile(path).model.backbone.to_dict()


def variant_cfg(variant: str, s: Settings, frames: int, img_size: int,
                **overrides) -> dict:
    """A variant's backbone config (from ``configs/_base_/models``) at the
    benchmark's shape."""
    base = load_backbone(CONFIG_DIR / f'_base_/models/vivit_{variant}.py')
    return backbone_cfg(base, s, frames, img_size, **overrides)


def variant_label(name: str) -> str:
    """``'Model N (ViViTMN)'`` of a variant (its registered backbone), else
    ``name``, for plot legends."""
    from mmaction.registry import MODELS
    if name not in variant_names():
        return name
    cls = MODELS.get(load_backbone(
        CONFIG_DIR / f'_base_/models/vivit_{name}.py')['type'])
    return f'Model {cls.paper_model} ({cls.__name__})'


def sweep_cfgs(s: Settings) -> Dict[int, List[NamedCfg]]:
    """Frames -> ``(name, backbone cfg)`` of the sweep: the config's
    backbone (at its own frames and image size unless ``--frames`` /
    ``--img-size`` are given), or each variant."""
    if s.config is None:
        return {f: [(v, variant_cfg(v, s, f, s.img_size))
                    for v in s.variants] for f in s.frames}
    base = load_backbone(s.config)
    frames = s.frames or (base.get('num_frames', 32), )
    img = base.get('img_size', 224) if s.img_size is None else s.img_size
    return {f: [(base['type'], backbone_cfg(base, s, f, img))]
            for f in frames}


def config_backbone(s: Settings) -> Optional[NamedCfg]:
    """The config's backbone at its first swept shape (None without a
    config)."""
    if s.config is None:
        return None
    return next(iter(sweep_cfgs(s).values()))[0]


def section_cfgs(s: Settings) -> List[NamedCfg]:
    """``(name, backbone cfg)`` for the bf16 and compile sections: the
    config's backbone at its first swept shape, or each variant at
    ``--compare-frames``."""
    if s.config is not None:
        return [config_backbone(s)]
    return [(v, variant_cfg(v, s, s.compare_frames, s.img_size))
            for v in s.variants]


def section_shape(s: Settings) -> str:
    """``'<T> frames at <H>x<W>'`` of :func:`section_cfgs`."""
    cfg = section_cfgs(s)[0][1]
    img = cfg['img_size']
    img = img if isinstance(img, (list, tuple)) else (img, img)
    return f'{cfg["num_frames"]} frames at {img[0]}x{img[1]}'


def describe(model: nn.Module) -> Tuple[str, str]:
    """``(shape text, width text)`` of a ViViT backbone, for the report."""
    a = model.arch_settings
    shape = (f'{model.img_size[0]}x{model.img_size[1]}, patch '
             f'{model.patch_size[0]}, tubelet {model.tubelet_size}')
    width = (f'D={a["embed_dims"]}, {a["num_heads"]} heads, MLP '
             f'{a["feedforward_channels"]}, {a["num_layers"]} layers')
    return shape, width


# ------------------------------------------------------------------ cases
def build(cfg: dict, device) -> nn.Module:
    """The model of ``cfg``, initialised, on ``device``."""
    model = build_model(cfg)
    model.init_weights()
    return model.to(device)


def video_input(model: nn.Module, batch: int, device=None) -> torch.Tensor:
    """A random ``[B, C, T, H, W]`` clip batch for a ViViT backbone."""
    return torch.randn(*backbone_input_shape(model, batch), device=device)


def macs_of(cfg: dict, batch: int) -> int:
    """MACs of a forward pass of the backbone ``cfg`` on ``batch`` clips
    (counted on the meta device)."""
    model = build_model(cfg, 'meta')
    return count_macs(model, backbone_input_shape(model, batch))


def vivit_case(name: str, cfg: dict, batch: int, device) -> Case:
    """A ViViT backbone built from ``cfg`` on ``batch`` random clips."""
    model = build(cfg, device)
    return Case(name, model, video_input(model, batch, device),
                macs=macs_of(cfg, batch), cfg=cfg)


def sweep_cases(s: Settings, device) -> Dict[int, List[Case]]:
    """Frames -> the sweep's cases (:func:`sweep_cfgs`), all built now."""
    return {f: [vivit_case(name, cfg, s.batch, device) for name, cfg in ncs]
            for f, ncs in sweep_cfgs(s).items()}


def hf_vivit_case(name: str, m1_cfg: dict, batch: int, device, attn: str,
                  act: str) -> Case:
    """HuggingFace ``VivitModel`` with Model 1's shape, attention
    implementation ``attn`` and activation ``act``."""
    from transformers import VivitConfig, VivitModel
    a = m1_cfg['arch']
    img, frames = m1_cfg['img_size'], m1_cfg['num_frames']
    t, p = m1_cfg.get('tubelet_size', 2), m1_cfg['patch_size']
    conf = VivitConfig(
        image_size=img, num_frames=frames, tubelet_size=[t, p, p],
        hidden_size=a['embed_dims'], num_hidden_layers=a['num_layers'],
        num_attention_heads=a['num_heads'],
        intermediate_size=a['feedforward_channels'], hidden_act=act,
        attn_implementation=attn)

    def fwd(m, inp):  # the final-normed CLS token, as Model 1 returns
        return m(pixel_values=inp).last_hidden_state[:, 0]

    shape = (batch, frames, 3, img, img)  # HF's layout: [B, T, C, H, W]
    with torch.device('meta'):
        macs = count_macs(VivitModel(conf, add_pooling_layer=False), shape,
                          fwd)
    model = VivitModel(conf, add_pooling_layer=False).to(device)
    return Case(name, model, torch.randn(*shape, device=device), fwd, macs)


def timesformer_case(name: str, m3_cfg: dict, batch: int, device) -> Case:
    """MMAction2's ``TimeSformer`` (divided space-time) with Model 3's
    shape (uniform frame sampling: one token per 16x16 patch per frame).

    Raises:
        ValueError: The width's MLP is not 4 x embed_dims (TimeSformer
            fixes it).
    """
    a = m3_cfg['arch']
    cfg = dict(type='TimeSformer', num_frames=m3_cfg['num_frames'],
               img_size=m3_cfg['img_size'], patch_size=m3_cfg['patch_size'],
               embed_dims=a['embed_dims'], num_heads=a['num_heads'],
               num_transformer_layers=a['num_layers'],
               attention_type='divided_space_time')
    if a['feedforward_channels'] != 4 * a['embed_dims']:
        raise ValueError('TimeSformer fixes the MLP width to 4 x embed_dims;'
                         f' --arch gives {a["feedforward_channels"]}.')
    shape = (batch, 3, m3_cfg['num_frames'], m3_cfg['img_size'],
             m3_cfg['img_size'])
    macs = count_macs(build_model(cfg, 'meta'), shape)
    model = build(cfg, device)
    return Case(name, model, torch.randn(*shape, device=device), macs=macs)


__all__ = ['Case', 'backbone_cfg', 'variant_cfg',
           'sweep_cfgs', 'config_backbone', 'section_cfgs', 'section_shape',
           'describe', 'variant_label', 'build', 'vivit_case', 'sweep_cases', 'hf_vivit_case',
           'timesformer_case', 'macs_of', 'video_input', 'load_backbone']
