"""The benchmark's settings: defaults and validation."""
import argparse
from pathlib import Path

import pytest
import torch

from vivit_bench.settings import (DEFAULT_FRAMES, DEFAULT_IMG_SIZE,
                                         Context, GemmProbe, Settings)

CONFIG = str(Path(__file__).resolve().parents[2] /
             'configs/vivit_m2_synthetic.py')


def test_sweep_shape_defaults_only_without_a_config():
    s = Settings()
    assert (s.frames, s.img_size) == (DEFAULT_FRAMES, DEFAULT_IMG_SIZE)
    s = Settings(config=CONFIG)
    assert (s.frames, s.img_size) == (None, None)
    assert s.variant_img_size == DEFAULT_IMG_SIZE
    s = Settings(config=CONFIG, frames=[8], img_size=32)
    assert (s.frames, s.img_size, s.variant_img_size) == ((8, ), 32, 32)


def test_settings_name_the_bad_option():
    with pytest.raises(ValueError, match=r'--frames must be positive, got '
                       r'\[4, 0\]'):
        Settings(frames=[4, 0])
    with pytest.raises(ValueError, match='--cp-img-size'):
        Settings(cp_img_size=-1)
    with pytest.raises(ValueError, match='--peak-tflops'):
        Settings(peak_tflops=0)
    with pytest.raises(ValueError, match=r"--variants: unknown \['m5'\]"):
        Settings(variants=['m1', 'm5'])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='--device cuda'):
            Settings(device='cuda')


def test_settings_are_frozen_and_json_ready():
    s = Settings(device='cpu', variants=['m1'], gemm_sizes=[64])
    assert s.device == 'cpu' and s.variants == ('m1', )
    with pytest.raises(AttributeError):
        s.batch = 3
    data = s.as_dict()
    assert data['gemm_sizes'] == (64, ) and data['out_dir'] == s.out_dir
    ns = argparse.Namespace(**dict(data, unrelated=1))
    assert Settings.from_args(ns) == s


def test_context_as_dict_leaves_the_probe_function_out():
    ctx = Context(torch.device('cpu'), gemm=GemmProbe(64, print, 2 * 64**3),
                  shape_text='32x32', width_text='D=32')
    assert ctx.as_dict() == dict(malloc_tuned=False, gemm_n=64,
                                 gemm_flops=2 * 64**3, shape_text='32x32',
                                 width_text='D=32')
