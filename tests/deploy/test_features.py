"""tools/misc/extract_features.py and vivit_mm.deploy.features: clip
features equal the backbone's pooled output averaged over the config's test
views; token features have the documented grid for every variant."""
import importlib.util

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from tests.conftest import REPO
from vivit_mm.convert.recognizer import recognizer_config, write_recognizer
from vivit_mm.deploy.features import (extract_features, read_video_list,
                                      token_features)
from vivit_mm.utils.build import build_model

TINY = dict(embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64)
NUM_CLASSES = 5
#: (file, width, height, frames): landscape and portrait.
VIDEOS = [('a.mp4', 64, 48, 10), ('sub/b.mp4', 40, 56, 12)]
# 2 clips x 3 crops = 6 test views of 4 frames at 32x32.
VIEWS = dict(num_clips=2, frame_interval=1, three_crop=True)


def tiny_backbone(kind='ViViTM1', **kwargs):
    """A 1-layer, 32-wide backbone config on 4 frames of 32x32."""
    return dict(dict(type=kind, arch=dict(TINY), img_size=32, num_frames=4,
                     patch_size=16, tubelet_size=2), **kwargs)


def write_tiny_recognizer(folder, backbone=None, seed=0):
    """A randomly initialised tiny recognizer written as a converted
    config + checkpoint (6 test views); returns their paths."""
    backbone = backbone or tiny_backbone()
    cfg = recognizer_config(backbone, NUM_CLASSES, **VIEWS)
    torch.manual_seed(seed)
    model = build_model(cfg['model'])
    model.init_weights()
    config, ckpt = folder / 'tiny_config.py', folder / 'tiny.pth'
    write_recognizer(model.state_dict(), backbone, NUM_CLASSES, ckpt,
                     config, **VIEWS)
    return config, ckpt


def load_tool(name):
    """A tool module, loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, REPO / name)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def write_video(path, width, height, frames, seed):
    """A bar moving across a noisy background, written as mp4v."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (width, height))
    for t in range(frames):
        img = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        img[:, (3 * t + 7 * seed) % width:][:, :5] = (255, 200, 50)
        writer.write(img)
    writer.release()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Two videos, their list file and a tiny Model 1 recognizer."""
    root = tmp_path_factory.mktemp('features')
    for seed, (name, w, h, n) in enumerate(VIDEOS):
        write_video(root / 'videos' / name, w, h, n, seed)
    ann = root / 'list.txt'
    ann.write_text(''.join(f'{name} {i}\n\n'
                           for i, (name, *_) in enumerate(VIDEOS)))
    config, ckpt = write_tiny_recognizer(root)
    return dict(root=root, ann=ann, config=config, ckpt=ckpt)


def reference_views(cfg, video):
    """The config's test views of ``video`` normalised by hand:
    ``[V, C, T, H, W]``."""
    init_default_scope('mmaction')
    out = Compose(cfg.test_pipeline)(dict(filename=str(video), label=-1,
                                          start_index=0, modality='RGB'))
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean).view(-1, 1, 1, 1)
    std = torch.tensor(pre.std).view(-1, 1, 1, 1)
    return (out['inputs'].float() - mean) / std


def run_tool(argv):
    return load_tool('tools/misc/extract_features.py').main(
        [str(a) for a in argv])


def test_clip_features_equal_backbone_over_views(data, tmp_path):
    from mmaction.apis import init_recognizer
    out = tmp_path / 'feats.npz'
    assert run_tool([data['config'], data['ckpt'], data['ann'], '--out',
                     out, '--data-prefix', data['root'] / 'videos']) == 0
    with np.load(out, allow_pickle=False) as npz:
        features, names = npz['features'], list(npz['names'])
    assert names == [name for name, *_ in VIDEOS]
    assert features.shape == (2, TINY['embed_dims'])
    assert features.dtype == np.float32
    cfg = Config.fromfile(str(data['config']))
    model = init_recognizer(cfg, str(data['ckpt']), device='cpu')
    for feature, (name, *_) in zip(features, VIDEOS):
        views = reference_views(cfg, data['root'] / 'videos' / name)
        assert views.shape == (6, 3, 4, 32, 32)
        with torch.no_grad():
            ref = model.backbone(views).mean(dim=0).numpy()
        np.testing.assert_allclose(feature, ref, rtol=1e-5, atol=1e-5)
    assert not np.allclose(features[0], features[1])


def test_token_features_of_one_video_npy(data, tmp_path):
    from mmaction.apis import init_recognizer
    (tmp_path / 'v').mkdir()
    video = tmp_path / 'v' / 'one.mp4'
    write_video(video, 64, 48, 9, seed=3)
    out = tmp_path / 'tokens.npy'
    assert run_tool([data['config'], data['ckpt'], video, '--out', out,
                     '--tokens']) == 0
    tokens = np.load(out)
    assert tokens.shape == (2, 2, 2, TINY['embed_dims'])  # n_t, n_h, n_w, D
    cfg = Config.fromfile(str(data['config']))
    model = init_recognizer(cfg, str(data['ckpt']), device='cpu')
    with torch.no_grad():
        ref = token_features(model.backbone, reference_views(cfg, video))
    np.testing.assert_allclose(tokens, ref.mean(dim=0).numpy(), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize('backbone, grid', [
    (tiny_backbone('ViViTM1'), (2, 2, 2)),
    (tiny_backbone('ViViTM1', pooling='gap', tokenizer='uniform',
                   tubelet_size=1, patch_size=8), (4, 4, 4)),
    (tiny_backbone('ViViTM2', num_temporal_layers=1), (2, 2, 2)),
    (tiny_backbone('ViViTM2', pooling='gap', num_temporal_layers=0,
                   tokenizer='uniform', tubelet_size=1), (4, 2, 2)),
    (tiny_backbone('ViViTM3', patch_size=8), (2, 4, 4)),
    (tiny_backbone('ViViTM4', tokenizer='uniform', tubelet_size=1),
     (4, 2, 2)),
])
def test_token_feature_grid(backbone, grid):
    torch.manual_seed(0)
    model = build_model(backbone).eval()
    model.init_weights()
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        tokens = token_features(model, x)
        pooled = model(x)
    assert tokens.shape == (3, *grid, TINY['embed_dims'])
    if model.pooling != 'gap':
        return
    # With average pooling the documented tokens are exactly what is pooled.
    if model.paper_model == 2:  # per temporal index, then over time
        with torch.no_grad():
            frames = model.forward_spatial(x)
        torch.testing.assert_close(tokens.mean(dim=(2, 3)), frames)
    torch.testing.assert_close(tokens.mean(dim=(1, 2, 3)), pooled)


def test_library_token_features_average_views(data):
    from mmaction.apis import init_recognizer
    cfg = Config.fromfile(str(data['config']))
    model = init_recognizer(cfg, str(data['ckpt']), device='cpu')
    model.test_cfg = dict(max_testing_views=4)  # 6 views in chunks
    videos = read_video_list(str(data['ann']), str(data['root'] / 'videos'))
    feats = extract_features(model, videos, tokens=True)
    assert feats.shape == (2, 2, 2, 2, TINY['embed_dims'])
    with torch.no_grad():
        ref = token_features(model.backbone,
                             reference_views(cfg, videos[1][0]))
    np.testing.assert_allclose(feats[1], ref.mean(dim=0).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_list_paths_default_to_the_list_folder(tmp_path):
    (tmp_path / 'list.txt').write_text('x/a.mp4 3\n')
    assert read_video_list(str(tmp_path / 'list.txt')) == [
        (str(tmp_path / 'x' / 'a.mp4'), 'x/a.mp4')]
    (tmp_path / 'bad.txt').write_text('x/a.mp4\n')
    with pytest.raises(ValueError, match=r'bad.txt:1: expected'):
        read_video_list(str(tmp_path / 'bad.txt'))


def test_missing_video_and_bad_out_fail_clearly(data, tmp_path, capsys):
    assert run_tool([data['config'], data['ckpt'], tmp_path / 'no.mp4',
                     '--out', tmp_path / 'f.npy']) == 2
    assert 'no.mp4' in capsys.readouterr().err
    assert run_tool([data['config'], data['ckpt'], data['ann'], '--out',
                     tmp_path / 'f.npy']) == 2
    assert 'use .npz' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_tool([data['config'], data['ckpt'], data['ann'], '--out',
                  tmp_path / 'f.txt'])
