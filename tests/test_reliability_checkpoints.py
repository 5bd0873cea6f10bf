"""A checkpoint that would run code is refused, with a reason, on the load
paths that tests/test_checkpoint_safety.py does not cover: the init hook
(.pth and .npz), ``inflate_image_weights``, ``init_cfg=Pretrained``, the
HuggingFace (``pytorch_model.bin``) and scenic converters, the export to
HuggingFace, and ``tools/train.py`` with ``--resume``/``load_from``.

Every payload would create a marker file when unpickled; each test checks
that it was refused and that the file was never created."""
import json
import os
from importlib.machinery import SourceFileLoader
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger

from vivit_mm import inflate_image_weights
from vivit_mm.engine import ViViTInitHook

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = dict(embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64)
BACKBONE = dict(type='ViViTM1', arch=ARCH, img_size=32, num_frames=4,
                patch_size=8, tubelet_size=2)
WHY = 'can run arbitrary code'


class _Payload:
    """Unpickling this runs ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture
def hostile(tmp_path):
    """(hostile .pth path, marker path)."""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'hostile.pth'
    torch.save(dict(state_dict={'backbone.cls_token': torch.zeros(1, 1, 32)},
                    meta=_Payload(marker)), path)
    return path, marker


def test_the_payload_is_real(hostile):
    path, marker = hostile
    torch.load(path, weights_only=False)
    assert marker.exists()  # so the other tests can fail


def test_init_hook_refuses_hostile_checkpoint(hostile):
    path, marker = hostile
    hook = ViViTInitHook(str(path))
    model = torch.nn.Module()
    model.backbone = MODELS.build(BACKBONE)
    runner = SimpleNamespace(model=model, _has_loaded=False,
                             logger=MMLogger.get_current_instance())
    with pytest.raises(ValueError, match=f'Refusing to load.*{WHY}'):
        hook.before_train(runner)
    with pytest.raises(ValueError, match='posix.system|os.system'):
        inflate_image_weights(model.backbone, str(path))
    assert not marker.exists()


def test_npz_with_pickled_objects_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    arrays = dict(cls=np.zeros((1, 1, 32), np.float32),
                  evil=np.array([_Payload(marker)], dtype=object))
    path = tmp_path / 'vit.npz'
    np.savez(path, **arrays)  # an object array is stored as a pickle
    backbone = MODELS.build(BACKBONE)
    with pytest.raises(ValueError, match='allow_pickle=False'):
        inflate_image_weights(backbone, str(path))
    from vivit_mm.convert.scenic import convert_scenic_checkpoint
    with pytest.raises(ValueError, match='allow_pickle=False'):
        convert_scenic_checkpoint(str(path), str(tmp_path / 'o.pth'),
                                  str(tmp_path / 'o.py'))
    assert not marker.exists()
    assert not (tmp_path / 'o.pth').exists()


def test_pretrained_init_cfg_refuses_hostile_checkpoint(hostile):
    path, marker = hostile
    backbone = MODELS.build(dict(BACKBONE, init_cfg=dict(
        type='Pretrained', checkpoint=str(path))))
    with pytest.raises(ValueError, match=WHY):
        backbone.init_weights()
    assert not marker.exists()


def test_hf_converter_refuses_hostile_pytorch_model_bin(tmp_path, hostile):
    path, marker = hostile
    folder = tmp_path / 'hf'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps(dict(
        model_type='vivit', hidden_size=32, num_hidden_layers=1)))
    os.replace(path, folder / 'pytorch_model.bin')
    from vivit_mm.convert import convert_hf_model_dir
    with pytest.raises(ValueError, match=f'Refusing.*{WHY}'):
        convert_hf_model_dir(str(folder), str(tmp_path / 'o.pth'),
                             str(tmp_path / 'o.py'))
    tool = SourceFileLoader('hf_to_vivit', os.path.join(
        REPO, 'tools', 'convert', 'hf_to_vivit.py')).load_module()
    assert tool.main([str(folder), str(tmp_path / 'o.pth'), '--out-config',
                      str(tmp_path / 'o.py')]) == 1
    assert not marker.exists()
    assert not (tmp_path / 'o.pth').exists()


def test_export_and_scenic_converter_refuse_hostile(tmp_path, hostile):
    path, marker = hostile
    from vivit_mm.convert import export_hf_model_dir
    from vivit_mm.convert.scenic import convert_scenic_checkpoint
    with pytest.raises(ValueError, match=WHY):
        export_hf_model_dir(str(path), os.path.join(
            REPO, 'configs', 'vivit_m1_k400.py'), str(tmp_path / 'hf'))
    # A torch file handed to the scenic converter is read as .npz (both are
    # zip files) without unpickling anything, and rejected.
    with pytest.raises(ValueError, match='not a ViViT parameter tree'):
        convert_scenic_checkpoint(str(path), str(tmp_path / 'o.pth'),
                                  str(tmp_path / 'o.py'))
    assert not marker.exists()


# --------------------------------------------------------------------------
# tools/train.py: the checkpoint to resume from or to load.
@pytest.fixture(scope='module')
def tiny_train_cfg(tmp_path_factory):
    """vivit_m2_k400.py, tiny, on one generated video."""
    ws = tmp_path_factory.mktemp('train')
    writer = cv2.VideoWriter(str(ws / 'v.mp4'),
                             cv2.VideoWriter_fourcc(*'mp4v'), 8, (40, 32))
    for t in range(8):
        writer.write(np.full((32, 40, 3), 20 * t, np.uint8))
    writer.release()
    (ws / 'list.txt').write_text('v.mp4 0\nv.mp4 1\n')
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'vivit_m2_k400.py'))
    cfg.model.backbone.update(arch=ARCH, img_size=32, num_frames=4,
                              num_temporal_layers=1)
    cfg.model.cls_head.update(num_classes=2, in_channels=32)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False,
                                batch_size=2)
    cfg.train_dataloader.dataset.update(ann_file=str(ws / 'list.txt'),
                                        data_prefix=dict(video=str(ws)))
    cfg.custom_hooks = []
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.max_epochs = 1
    path = ws / 'cfg.py'
    cfg.dump(str(path))
    return str(path)


@pytest.mark.parametrize('how', ['resume', 'load_from'])
def test_train_tool_refuses_hostile_checkpoint(tmp_path, hostile,
                                               tiny_train_cfg, how):
    path, marker = hostile
    train = SourceFileLoader('vivit_train_tool', os.path.join(
        REPO, 'tools', 'train.py')).load_module()
    args = [tiny_train_cfg, '--work-dir', str(tmp_path / 'wd')]
    args += ['--resume', str(path)] if how == 'resume' else [
        '--cfg-options', f'load_from={path}']
    with pytest.raises(ValueError, match=f'Refusing to load.*{WHY}'):
        train.main(args)
    assert not marker.exists()
    assert not list((tmp_path / 'wd').glob('*.pth'))  # nothing trained

