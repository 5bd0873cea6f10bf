"""What a benchmark run measures (:class:`Settings`, fixed by the command
line) and what it learns on the way (:class:`Context`: the device, the GEMM
probe, how the swept models look)."""
import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import torch

#: ``configs/`` of this checkout: the variants are the model base configs
#: ``_base_/models/vivit_<variant>.py`` (``m1`` ... ``m4``).
CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs'


def variant_names() -> Tuple[str, ...]:
    """The variants the benchmark can sweep: one per model base config."""
    return tuple(sorted(p.stem[len('vivit_'):] for p in
                        (CONFIG_DIR / '_base_' / 'models').glob('vivit_*.py')))


def parse_width(text: str) -> Dict[str, int]:
    """``--arch``: a name of the backbones' arch zoo (``b``, ``l``, ``h``,
    ...) or ``'embed_dims,num_heads,mlp'`` -> width settings.

    Raises:
        ValueError: ``text`` is neither; the message names ``--arch``.
    """
    from vivit_mm.models.backbones.base import BaseViViT
    if text.lower() in BaseViViT.arch_zoo:
        arch = BaseViViT.parse_arch(text)
        return {k: arch[k] for k in WIDTH_KEYS}
    try:
        return dict(zip(WIDTH_KEYS, (int(v) for v in text.split(',')),
                        strict=True))
    except ValueError:
        raise ValueError(
            f'--arch must be one of {sorted(BaseViViT.arch_zoo)} or '
            f'"embed_dims,num_heads,mlp", got {text!r}') from None


#: What ``--arch`` sets (``--layers`` sets the depth).
WIDTH_KEYS = ('embed_dims', 'num_heads', 'feedforward_channels')
#: Frame counts and image size swept when no config is given.
DEFAULT_FRAMES = (4, 8, 16, 32)
DEFAULT_IMG_SIZE = 160
#: Options that must be positive (``--name`` spelt with ``_``).
POSITIVE = ('frames', 'batch', 'iters', 'img_size', 'patch_size',
            'tubelet_size', 'compare_frames', 'cp_frames', 'cp_img_size')


@dataclass(frozen=True)
class Settings:
    """The options of one run; field names and defaults are those of
    ``tools/analysis_tools/benchmark.py``'s options.

    ``frames`` and ``img_size`` are None when not given: with a config, the
    config's own shape is swept; without one they become
    :data:`DEFAULT_FRAMES` and :data:`DEFAULT_IMG_SIZE`. ``device`` ``'auto'``
    becomes ``'cuda'`` where CUDA is available, else ``'cpu'``.

    Raises:
        ValueError: An option is out of range or names an unavailable
            device; the message names the option.
    """

    config: Optional[str] = None
    variants: Optional[Tuple[str, ...]] = None  # None: all
    device: str = 'auto'
    frames: Optional[Tuple[int, ...]] = None
    img_size: Optional[int] = None
    patch_size: Optional[int] = None
    tubelet_size: Optional[int] = None
    batch: int = 2
    layers: int = 4
    arch: Optional[Union[str, Dict[str, int]]] = None  # see parse_width
    warmup: int = 1
    iters: int = 5
    threads: int = 0
    gemm_sizes: Tuple[int, ...] = (2048, 3072, 4096)
    no_train: bool = False
    no_step_peak: bool = False
    no_compare: bool = False
    compare_frames: int = 8
    no_cp: bool = False
    cp_frames: int = 16
    cp_img_size: int = 224
    no_amp: bool = False
    compile: bool = False
    tune_malloc: bool = False
    peak_tflops: Optional[float] = None
    out_dir: str = 'work_dirs/benchmark'

    def __post_init__(self) -> None:
        for name in ('variants', 'frames', 'gemm_sizes'):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.variants is None:
            object.__setattr__(self, 'variants', variant_names())
        if isinstance(self.arch, str):
            object.__setattr__(self, 'arch', parse_width(self.arch))
        if self.config is None:
            if self.frames is None:
                object.__setattr__(self, 'frames', DEFAULT_FRAMES)
            if self.img_size is None:
                object.__setattr__(self, 'img_size', DEFAULT_IMG_SIZE)
        self._check()
        object.__setattr__(self, 'device', _resolve_device(self.device))

    def _check(self) -> None:
        unknown = [v for v in self.variants if v not in variant_names()]
        if unknown:
            raise ValueError(f'--variants: unknown {unknown}, choose from '
                             f'{list(variant_names())}')
        if self.peak_tflops is not None and self.peak_tflops <= 0:
            raise ValueError(
                f'--peak-tflops must be positive, got {self.peak_tflops}')
        for name in POSITIVE:
            value = getattr(self, name)
            if value is None:
                continue
            values = value if isinstance(value, tuple) else (value, )
            if any(v <= 0 for v in values):
                shown = list(value) if isinstance(value, tuple) else value
                raise ValueError(f'--{name.replace("_", "-")} must be '
                                 f'positive, got {shown}')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'Settings':
        """The settings of a parsed command line (unknown names ignored)."""
        return cls(**{f.name: getattr(args, f.name)
                      for f in dataclasses.fields(cls)
                      if hasattr(args, f.name)})

    @property
    def variant_img_size(self) -> int:
        """Image size of the variants built next to a config's backbone
        (the side-by-side comparison): ``--img-size``, else 160."""
        return DEFAULT_IMG_SIZE if self.img_size is None else self.img_size

    def as_dict(self) -> dict:
        """The settings as JSON-ready data."""
        return dataclasses.asdict(self)


def _resolve_device(device: str) -> str:
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: CUDA is not available')
    return device


@dataclass(frozen=True)
class GemmProbe:
    """One ``n x n`` fp32 matrix multiply timed in every timing round."""

    n: int
    fn: Callable[[], object]
    flops: int


@dataclass(frozen=True)
class Context:
    """What the suites share beyond the settings.

    Args:
        device (torch.device): Where everything runs.
        malloc_tuned (bool): Whether ``--tune-malloc`` took effect.
        gemm (GemmProbe, optional): Set by the GEMM suite.
        shape_text (str): Input shape of the swept models, for the report.
        width_text (str): Their width and depth, for the report.
    """

    device: torch.device
    malloc_tuned: bool = False
    gemm: Optional[GemmProbe] = None
    shape_text: str = ''
    width_text: str = ''

    def as_dict(self) -> dict:
        """JSON-ready data (the GEMM probe's size and FLOPs, not its
        function)."""
        return dict(malloc_tuned=self.malloc_tuned,
                    gemm_n=self.gemm and self.gemm.n,
                    gemm_flops=self.gemm and self.gemm.flops,
                    shape_text=self.shape_text, width_text=self.width_text)


__all__ = ['Settings', 'Context', 'GemmProbe', 'variant_names', 'parse_width',
           'CONFIG_DIR', 'DEFAULT_FRAMES', 'DEFAULT_IMG_SIZE']
