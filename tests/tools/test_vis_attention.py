"""tools/visualizations/vis_attention.py: the PNG grid, the mp4 and the
npz of the trained demo model (CLS-pooled Model 2) and of gap-pooled
Models 1, 3 and 4; bad input fails with a clear message."""
import runpy

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vivit_mm.datasets.synthetic import generate_dataset

TOOL = str(REPO / 'tools' / 'visualizations' / 'vis_attention.py')
CONFIG = str(REPO / 'configs' / 'vivit_m2_synthetic.py')
WEIGHTS = str(REPO / 'tests' / 'assets' / 'vivit_m2_synthetic_demo.pth')


@pytest.fixture(scope='module')
def tool():
    return runpy.run_path(TOOL)


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    generate_dataset(str(root), num_train=1, num_val=0, num_test=1)
    return str(root / 'test' / '00002.mp4')  # grow_then_shrink


def read_mp4(path):
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return np.stack(frames)
        frames.append(f)


def test_demo_model(tool, video, tmp_path, capsys):
    assert tool['main']([CONFIG, WEIGHTS, video, '--out-dir',
                         str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'top classes: grow_then_shrink' in out  # names from the ckpt
    assert 'rollout: rollout of the spatial encoder' in out
    assert 'cls_attention: CLS attention' in out
    data = np.load(tmp_path / '00002_attention.npz')
    assert data['frames'].shape == (8, 32, 32, 3)  # the clip the model saw
    for name in ('rollout', 'cls_attention'):
        assert data[name].shape == (8, 4, 4) and (data[name] >= 0).all()
    assert data['scores'].shape == (4, ) and data['scores'].argmax() == 2
    png = cv2.imread(str(tmp_path / '00002_attention.png'))
    # title + 3 rows (label strip + 128 px: 32 px frames enlarged 4x),
    # 8 columns of 128 px with 2 px gaps
    assert png.shape == (22 + 3 * (18 + 128), 8 * 128 + 7 * 2, 3)
    mp4 = read_mp4(str(tmp_path / '00002_attention.mp4'))
    assert mp4.shape == (8, 128, 3 * 128 + 2 * 2, 3)
    # The first panel is the input clip, enlarged (mp4v is lossy).
    shown = data['frames'].repeat(4, 1).repeat(4, 2)[..., ::-1]
    assert np.abs(mp4[:, :, :128].astype(float) - shown).mean() < 6


@pytest.mark.parametrize('variant', ['ViViTM1', 'ViViTM3', 'ViViTM4'])
def test_gap_pooled_variants(tool, video, tmp_path, variant, capsys):
    from mmaction.apis import init_recognizer
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone = dict(
        type=variant, arch=dict(embed_dims=32, num_layers=2, num_heads=4,
                                feedforward_channels=64),
        img_size=32, num_frames=8, patch_size=8, tubelet_size=2,
        pooling='gap')
    cfg.model.cls_head.in_channels = 32
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'model.pth')
    model = init_recognizer(cfg_path, device='cpu')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    assert tool['main']([cfg_path, ckpt, video, '--out-dir', str(tmp_path),
                         '--per-clip', '--scale', '2', '--view', '5']) == 0
    out = capsys.readouterr().out
    assert 'rollout' in out and 'cls_attention' not in out
    data = np.load(tmp_path / '00002_attention.npz')
    assert data['rollout'].shape == (4, 4, 4)  # tubelets of 2 frames
    assert 'cls_attention' not in data
    np.testing.assert_allclose(data['rollout'].sum(), 1, rtol=1e-5)
    assert read_mp4(str(tmp_path / '00002_attention.mp4')).shape == \
        (8, 64, 2 * 64 + 2, 3)


def test_bad_input(tool, video, tmp_path, capsys):
    out = str(tmp_path / 'out')
    assert tool['main']([CONFIG, WEIGHTS, str(tmp_path / 'none.mp4'),
                         '--out-dir', out]) == 2
    assert 'no video file' in capsys.readouterr().err
    assert tool['main']([CONFIG, WEIGHTS, video, '--out-dir', out,
                         '--view', '6']) == 2
    assert 'makes 6 views (0-5)' in capsys.readouterr().err
    assert tool['main']([CONFIG, WEIGHTS, video, '--out-dir', out,
                         '--cfg-options',
                         'model.backbone.num_temporal_layers=1']) == 2
    err = capsys.readouterr().err
    assert 'temporal_layers.1' in err, err
    labels = tmp_path / 'labels.txt'
    labels.write_text('a\nb\n')
    assert tool['main']([CONFIG, WEIGHTS, video, '--out-dir', out,
                         '--label-map', str(labels)]) == 2
    assert 'has 2 class names but the model predicts 4' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool['parse_args']([CONFIG, WEIGHTS, video, '--out-dir', out,
                            '--alpha', '2'])
