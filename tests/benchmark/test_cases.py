"""Which models the benchmark builds, at which shapes."""
from pathlib import Path

import torch

from vivit_bench.cases import (describe, section_cfgs, section_shape,
                                      sweep_cfgs, variant_cfg, vivit_case)
from vivit_bench.settings import Settings

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
SYNTHETIC = str(CONFIGS / 'vivit_m2_synthetic.py')  # 8 frames at 32x32


def test_variant_cfg_takes_the_run_width_and_shape():
    s = Settings(arch=dict(embed_dims=32, num_heads=4,
                           feedforward_channels=64), layers=1, patch_size=8)
    cfg = variant_cfg('m3', s, 4, 32, with_cp=True)
    assert cfg['type'] == 'ViViTM3'
    assert cfg['arch'] == dict(embed_dims=32, num_layers=1, num_heads=4,
                               feedforward_channels=64)
    assert (cfg['num_frames'], cfg['img_size'], cfg['patch_size'],
            cfg['with_cp']) == (4, 32, 8, True)


def test_a_config_is_swept_at_its_own_shape_unless_told():
    cfgs = sweep_cfgs(Settings(config=SYNTHETIC, layers=0))
    ((name, cfg), ) = cfgs[8]
    assert list(cfgs) == [8] and name == 'ViViTM2'
    assert cfg['img_size'] == 32 and cfg['arch']['num_layers'] == 3
    cfgs = sweep_cfgs(Settings(config=SYNTHETIC, frames=[2, 4], img_size=16))
    assert list(cfgs) == [2, 4]
    assert {c['img_size'] for (_, c), in cfgs.values()} == {16}
    s = Settings(config=SYNTHETIC, frames=[4])
    assert [n for n, _ in section_cfgs(s)] == ['ViViTM2']
    assert section_shape(s) == '4 frames at 32x32'


def test_variants_are_swept_at_the_default_shape():
    s = Settings(variants=['m1', 'm4'], frames=[2, 4], compare_frames=2)
    cfgs = sweep_cfgs(s)
    assert list(cfgs) == [2, 4]
    assert [n for n, _ in cfgs[4]] == ['m1', 'm4']
    assert [n for n, _ in section_cfgs(s)] == ['m1', 'm4']
    assert section_shape(s) == '2 frames at 160x160'


def test_vivit_case_counts_macs_and_trains():
    s = Settings(arch=dict(embed_dims=32, num_heads=4,
                           feedforward_channels=64), layers=1, patch_size=8)
    cfg = variant_cfg('m1', s, 2, 16)
    case = vivit_case('m1', cfg, 1, torch.device('cpu'))
    assert case.cfg == cfg and case.macs > 0
    assert case.x.shape == (1, 3, 2, 16, 16)
    case.train_step()
    assert case.model.patch_embed.projection.weight.grad is not None
    shape, width = describe(case.model)
    assert shape == '16x16, patch 8, tubelet 2'
    assert width == 'D=32, 4 heads, MLP 64, 1 layers'
