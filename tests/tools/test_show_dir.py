"""tools/test.py --show-dir: end to end on the tiny trained model, and for
every shipped config through its dumped config, its own test pipeline, its
visualizer and the hook."""
import json
import sys
from argparse import Namespace
from importlib.machinery import SourceFileLoader
from types import SimpleNamespace

import cv2
import pytest
import torch
from mmaction.registry import HOOKS, VISUALIZERS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

from tests.conftest import REPO
from tests.tools.helpers import VIDEOS, run, write_video
from vivit_mm.compat import set_gt_label
from vivit_mm.datasets.video_errors import iter_transforms
from vivit_mm.engine import VideoVisualizationHook

TEST = str(REPO / 'tools' / 'test.py')
SHIPPED = sorted(p.name for p in (REPO / 'configs').glob('*.py'))


def load_test_tool():
    return SourceFileLoader('vivit_test_tool', TEST).load_module()


def show_args(show_dir, interval=1):
    return Namespace(show=False, show_dir=str(show_dir), interval=interval,
                     wait_time=0.0, dump=None, cfg_options=None,
                     work_dir=str(show_dir), config='cfg.py',
                     checkpoint='ckpt.pth')


def test_show_dir_writes_the_frames_of_every_video(trained, tmp_path):
    cfg, ckpt = str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')
    for interval, expected in ((1, range(len(VIDEOS))), (2, (0, 2, 4))):
        show = tmp_path / f'show{interval}'
        proc = run([sys.executable, TEST, cfg, ckpt, '--work-dir',
                    str(tmp_path / f'wd{interval}'), '--show-dir', str(show),
                    '--interval', str(interval)])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((tmp_path / f'wd{interval}' /
                           'test_metrics.json').read_text())
        # One folder per drawn video, named after it; the first test view:
        # 4 frames of 32x32 (the tiny config's clip and crop).
        assert sorted(p.name for p in show.iterdir()) == [
            f'v{i}.mp4_0' for i in expected]
        for i in expected:
            pngs = sorted((show / f'v{i}.mp4_0' / 'frames_0').iterdir())
            assert [p.name for p in pngs] == [f'{t}.png' for t in range(4)]
            for p in pngs:
                assert cv2.imread(str(p)).shape == (32, 32, 3)


def test_merge_args_switches_mmaction_hook_and_enables_it(tmp_path):
    tool = load_test_tool()
    for hook in (dict(type='VisualizationHook', enable=False, fps=8), None):
        cfg = Config(dict(default_hooks=dict(visualization=hook)))
        cfg = tool.merge_args(cfg, show_args(tmp_path, interval=3))
        vis = cfg.default_hooks.visualization
        assert vis.type == 'VideoVisualizationHook'
        assert (vis.enable, vis.out_dir, vis.interval) == (
            True, str(tmp_path), 3)
    assert vis.get('fps') is None  # a new hook when the config had none
    cfg = tool.merge_args(Config(dict(default_hooks=dict(
        visualization=dict(type='VisualizationHook', fps=8)))),
        show_args(tmp_path))
    assert cfg.default_hooks.visualization.fps == 8  # other keys kept


def _packed_sample(cfg, video):
    """One video through the config's own test pipeline, collated as the
    test loop's data batch."""
    init_default_scope('mmaction')
    data = Compose(cfg.test_pipeline)(dict(
        filename=str(video), label=1, start_index=0, modality='RGB'))
    return pseudo_collate([data])


@pytest.mark.parametrize('name', SHIPPED)
def test_show_dir_works_with_every_shipped_config(name, tmp_path):
    """The config as tools/test.py --show-dir dumps it builds the hook,
    and the hook draws the config's real test views through the config's
    visualizer."""
    tool = load_test_tool()
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    cfg = tool.merge_args(cfg, show_args(tmp_path / 'show'))
    cfg.dump(str(tmp_path / 'dumped.py'))
    cfg = Config.fromfile(str(tmp_path / 'dumped.py'))
    hook = HOOKS.build(cfg.default_hooks.visualization)
    assert isinstance(hook, VideoVisualizationHook) and hook.enable
    assert hook.out_dir == str(tmp_path / 'show')
    fmt = [t for t in iter_transforms(cfg.test_pipeline)
           if t['type'] == 'FormatShape']
    assert [t.input_format for t in fmt] == ['NCTHW']
    sampler = [t for t in iter_transforms(cfg.test_pipeline)
               if t['type'] == 'SampleFrames'][0]
    crop = [t for t in cfg.test_pipeline if 'crop_size' in t][0].crop_size

    video = tmp_path / 'clip.mp4'
    write_video(video, 64, 48, 12, seed=0)
    batch = _packed_sample(cfg, video)
    views = batch['inputs'][0]
    assert views.dim() == 5  # [V, C, T, H, W]: what MMAction2's hook breaks on
    sample = set_gt_label(ActionDataSample(), torch.tensor([1]))
    sample.set_pred_label(torch.tensor([2]))
    VISUALIZERS.build(dict(cfg.visualizer, name=f'vis_{name}',
                           save_dir=str(tmp_path / 'vis')))
    loader = SimpleNamespace(dataset=None)
    hook.after_test_iter(SimpleNamespace(test_dataloader=loader), 0, batch,
                         [sample])
    pngs = list((tmp_path / 'show' / '0_0' / 'frames_0').glob('*.png'))
    assert len(pngs) == sampler.clip_len  # the first view's frames
    assert cv2.imread(str(pngs[0])).shape == (crop, crop, 3)
