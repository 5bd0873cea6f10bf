"""Helpers of the tool tests (imported, not collected)."""
import os
import socket
import subprocess
import sys

import cv2
import numpy as np
import torch
from mmengine.config import Config

from tests.conftest import REPO
from vivit_mm.datasets.video_errors import iter_transforms

K400_M2 = REPO / 'configs' / 'vivit_m2_k400.py'
TINY = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
NUM_CLASSES = 6
# (width, height, frames, label): landscape, portrait, and a video shorter
# than one clip (4 frames with stride 2 span 7 frames).
VIDEOS = [(64, 48, 12, 0), (40, 56, 12, 1), (64, 48, 3, 2), (40, 56, 14, 0),
          (80, 64, 10, 1)]


def write_video(path, width, height, frames, seed):
    """A bar moving across a noisy background, written as mp4v."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (width, height))
    for t in range(frames):
        img = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        x = (3 * t + 7 * seed) % width
        img[:, x:x + 5] = (255, 200, 50)
        writer.write(img)
    writer.release()


def shrink_pipeline(pipeline):
    """The config's transforms with clip length and sizes scaled down."""
    for t in iter_transforms(pipeline):
        if t['type'] == 'SampleFrames':
            t['clip_len'] = 4
        elif t['type'] == 'Resize':
            t['scale'] = (-1, 40 if t['scale'][1] == 256 else 32)
        elif t['type'] == 'RandomCrop':
            t['size'] = 32
        elif t['type'] in ('CenterCrop', 'ThreeCrop'):
            t['crop_size'] = 32


def inner_dataset(loader_cfg):
    """The data set config inside wrappers (ReproducibleDataset ...)."""
    ds = loader_cfg.dataset
    while isinstance(ds.get('dataset'), dict):
        ds = ds.dataset
    return ds


def tiny_config(data_dir):
    """vivit_m2_k400.py with a tiny model, small clips and local videos."""
    cfg = Config.fromfile(str(K400_M2))
    cfg.model.backbone.update(arch=TINY, img_size=32, num_frames=4,
                              num_temporal_layers=1)
    cfg.model.cls_head.update(num_classes=NUM_CLASSES, in_channels=32)
    shrink_pipeline(cfg.test_pipeline)
    ann = os.path.join(data_dir, 'list.txt')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        dataset = inner_dataset(loader)
        dataset.update(ann_file=ann, data_prefix=dict(video=data_dir))
        shrink_pipeline(dataset.pipeline)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_epochs=2, val_interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = []  # no ImageNet checkpoint here
    cfg.randomness = dict(seed=0)
    return cfg


def load_tool(rel):
    """A tool script (e.g. ``'tools/data/build_video_lists.py'``) as a
    module, to call its ``main(argv)`` in this process."""
    import importlib.util
    name = os.path.splitext(os.path.basename(rel))[0]
    spec = importlib.util.spec_from_file_location(name, REPO / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env():
    """The tools' environment: this interpreter first on PATH, 1 thread."""
    out = dict(os.environ)
    out['PATH'] = os.path.dirname(sys.executable) + ':' + out['PATH']
    out.setdefault('OMP_NUM_THREADS', '1')
    return out


def run(args, cwd=None, **kwargs):
    """Run a tool (any working directory; the tests pass full paths)."""
    return subprocess.run(args, cwd=cwd or os.path.expanduser('~'),
                          env=env(), capture_output=True, text=True,
                          timeout=300, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def manual_scores(model, data):
    """Reference: per-view logits of backbone + head, averaged."""
    views = data['inputs'].float()  # [views, C, T, H, W]
    x = (views - 127.5) / 127.5
    with torch.no_grad():
        return model.cls_head(model.backbone(x)).mean(0)


def mmaction_tools(script):
    """MMAction2's own ``tools/<script>``: ``mmaction/.mim/tools`` of the
    PyPI package, or ``tools/`` beside ``mmaction/`` in a source install;
    the test is skipped where neither has it."""
    import mmaction
    import pytest
    package = os.path.dirname(mmaction.__file__)
    for folder in (os.path.join(package, '.mim', 'tools'),
                   os.path.join(os.path.dirname(package), 'tools')):
        if os.path.isfile(os.path.join(folder, script)):
            return os.path.join(folder, script)
    pytest.skip(f'MMAction2 at {package} ships no tools/{script}')
