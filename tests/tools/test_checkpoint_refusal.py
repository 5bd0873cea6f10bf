"""A checkpoint that does not fit the config is refused by tools/test.py,
MMAction2's own tools/test.py and demo/demo.py, naming the file and the
cause; tools/train.py with load_from takes a head of another class count
(fine-tuning) with one log line. The right checkpoint's runs are in
test_test.py and test_demo.py."""
import sys
from importlib.machinery import SourceFileLoader

import pytest

from tests.conftest import REPO
from tests.tools.helpers import mmaction_tools, run

TEST = str(REPO / 'tools' / 'test.py')
TRAIN = str(REPO / 'tools' / 'train.py')


def test_test_tool_refuses_another_class_count(trained, tmp_path):
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    proc = run([sys.executable, TEST, str(trained / 'cfg.py'), ckpt,
                '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                'model.cls_head.num_classes=4'])
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"error: Checkpoint '{ckpt}' does not fit the ViViTHead head " \
        '(cls_head)' in proc.stderr
    assert 'another class count: 6 classes in the checkpoint, 4 in this ' \
        'model' in proc.stderr
    assert not (tmp_path / 'wd' / 'test_metrics.json').exists()


def test_mmaction_test_tool_refuses_another_model(trained, tmp_path):
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    proc = run([sys.executable, mmaction_tools('test.py'), str(trained / 'cfg.py'), ckpt,
                '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                'model.backbone.num_temporal_layers=2'])
    assert proc.returncode != 0
    assert 'load_checks.CheckpointMisfitError: ' \
        f"Checkpoint '{ckpt}' does not fit the ViViTM2 backbone " \
        '(backbone): 12 missing keys ' \
        '(backbone.temporal_layers.1.attn.proj.bias' in proc.stderr
    assert 'another depth: 1 blocks in temporal_layers of the checkpoint, ' \
        '2 here' in proc.stderr


def test_demo_refuses_another_class_count(trained, capsys):
    demo = SourceFileLoader('vivit_demo',
                            str(REPO / 'demo' / 'demo.py')).load_module()
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    with pytest.raises(SystemExit) as e:
        demo.main([str(trained / 'videos' / 'v0.mp4'), str(trained / 'cfg.py'),
                   ckpt, '--cfg-options', 'model.cls_head.num_classes=3'])
    assert str(e.value).startswith(
        f"error: Checkpoint '{ckpt}' does not fit the ViViTHead head")


def test_train_load_from_takes_another_class_count(trained, tmp_path):
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    proc = run([sys.executable, TRAIN, str(trained / 'cfg.py'),
                '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                f'load_from={ckpt}', 'model.cls_head.num_classes=4',
                'train_cfg.max_epochs=1', 'train_cfg.val_interval=2'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    lines = [ln for ln in out.splitlines() if 'the head is new' in ln]
    assert len(lines) == 1, lines
    assert 'another class count: 6 classes in the checkpoint, 4 in this ' \
        'model' in lines[0]
    assert 'do not match exactly' not in out  # no second warning block
    # a backbone that does not fit is refused, naming the file
    proc = run([sys.executable, TRAIN, str(trained / 'cfg.py'),
                '--work-dir', str(tmp_path / 'wd2'), '--cfg-options',
                f'load_from={ckpt}', 'model.backbone.num_temporal_layers=2',
                'train_cfg.max_epochs=1'])
    assert proc.returncode == 1
    assert f"error: Checkpoint '{ckpt}' does not fit the ViViTM2 backbone" \
        in proc.stderr
