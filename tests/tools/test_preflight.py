"""Pre-flight checks of ``tools/train.py`` and ``tools/test.py``
(``tools/vivit_cli/preflight.py``): a config that references a missing or
truncated checkpoint fails before anything is built, and ``--resume``
without a path finds the newest complete checkpoint."""
import os
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from tests.conftest import REPO
from vivit_cli.preflight import (check_checkpoints, checkpoint_problem,
                                 find_resumable_checkpoint)

K400_M2 = str(REPO / 'configs' / 'vivit_m2_k400.py')


def _tool(name):
    return SourceFileLoader(f'vivit_{name}_tool',
                            str(REPO / 'tools' / f'{name}.py')).load_module()


class _NotBuilt(Exception):
    """Raised by a patched Runner.from_cfg: the checks passed."""


def _data_options(folder):
    """--cfg-options pointing the K400 config's data at a list file in
    ``folder`` (the data checks come before the checkpoint checks)."""
    ann = folder / 'list.txt'
    ann.write_text('v.mp4 0\n')
    return [f'{key}={value}' for split, ds in (
        ('train', 'train_dataloader.dataset.dataset'),
        ('val', 'val_dataloader.dataset'))
        for key, value in ((f'{ds}.ann_file', ann),
                           (f'{ds}.data_prefix.video', folder))]


def _train_main(argv):
    """tools/train.py's main(argv) on local data, up to Runner.from_cfg."""
    train = _tool('train')
    work_dir = argv[argv.index('--work-dir') + 1]
    data = os.path.join(work_dir, 'data')
    os.makedirs(data, exist_ok=True)
    if '--cfg-options' not in argv:
        argv = argv + ['--cfg-options']
    argv = argv + _data_options(Path(data))
    with patch.object(Runner, 'from_cfg', side_effect=_NotBuilt):
        train.main(argv)


def _absent_image_checkpoint(tmp_path):
    """--cfg-options pointing the K400 configs' ViViTInitHook at a file
    that does not exist (whatever the user downloaded)."""
    return f'custom_hooks.0.checkpoint={tmp_path / "absent_vit.pth"}'


def _complete_checkpoint(path, numel=1000):
    torch.save(dict(state_dict=dict(w=torch.zeros(numel))), path)
    return path


# --------------------------------------------------------------------------
# Missing checkpoints fail first.
def test_missing_load_from_fails_before_building(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises((FileNotFoundError, SystemExit),
                       match=f"load_from='{missing}': the file does not "
                       'exist.*nothing has been trained'):
        _train_main([K400_M2, '--work-dir', str(tmp_path),
                     '--cfg-options', f'load_from={missing}'])


def test_missing_resume_checkpoint_fails_before_building(tmp_path):
    missing = tmp_path / 'epoch_9.pth'
    with pytest.raises((FileNotFoundError, SystemExit),
                       match=r'does not exist \(resume=True resumes from'):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--resume',
                     str(missing)])


def test_truncated_checkpoint_fails_before_building(tmp_path):
    good = _complete_checkpoint(tmp_path / 'good.pth')
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises((ValueError, SystemExit), match='truncated or damaged'):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--resume',
                     str(cut)])
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises((ValueError, SystemExit), match=r'empty \(0 bytes\)'):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--cfg-options',
                     f'load_from={empty}'])
    with pytest.raises(_NotBuilt):  # a complete file passes
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--cfg-options',
                     f'load_from={good}'])


def test_init_hook_checkpoint_needed_only_from_scratch(tmp_path):
    # The image checkpoint the K400 configs inflate is not there: training
    # from scratch must stop at once...
    absent = _absent_image_checkpoint(tmp_path)
    with pytest.raises((FileNotFoundError, SystemExit),
                       match=r'custom_hooks\[0\]\.'
                       f"checkpoint='{tmp_path / 'absent_vit.pth'}'"
                       '.*ViViTInitHook'):
        _train_main([K400_M2, '--work-dir', str(tmp_path),
                     '--cfg-options', absent])
    # ... but not when weights are restored (load_from or resume).
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict={}), good)
    with pytest.raises(_NotBuilt):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--cfg-options',
                     absent, f'load_from={good}'])
    (tmp_path / 'epoch_1.pth').write_bytes(good.read_bytes())
    with pytest.raises(_NotBuilt):
        _train_main([K400_M2, '--work-dir', str(tmp_path), '--resume',
                     '--cfg-options', absent])


def test_missing_pretrained_init_cfg_fails_before_building(tmp_path):
    cfg = Config.fromfile(K400_M2)
    cfg.custom_hooks = []
    cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                       checkpoint=str(tmp_path / 'vit.pth'))
    cfg.work_dir = str(tmp_path)
    with pytest.raises((FileNotFoundError, SystemExit),
                       match=r'model\.backbone\.init_cfg\.checkpoint='):
        check_checkpoints(cfg)
    cfg.model.backbone.init_cfg.checkpoint = 'https://example.com/vit.pth'
    check_checkpoints(cfg)  # remote paths are left to the loader


def test_test_tool_missing_checkpoint_fails_before_building(tmp_path):
    test = _tool('test')
    with patch.object(Runner, 'from_cfg', side_effect=_NotBuilt):
        with pytest.raises((FileNotFoundError, SystemExit),
                           match="CHECKPOINT='.*nope.pth': the file does "
                           'not exist'):
            test.main([K400_M2, str(tmp_path / 'nope.pth'), '--work-dir',
                       str(tmp_path)])


# Without tools/train.py: the Runner itself fails before the first
# iteration (after building), never after an epoch.
class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x, y, mode='tensor'):
        return dict(loss=nn.functional.cross_entropy(self.fc(x), y))


class _CountIters(Hook):

    def __init__(self):
        self.iters = 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters += 1


@pytest.mark.parametrize('resume', [False, True])
def test_runner_with_missing_load_from_fails_before_any_iteration(
        tmp_path, resume):
    counter = _CountIters()
    data = [dict(x=torch.zeros(2), y=torch.tensor(0))] * 4
    runner = Runner(
        _Toy(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, batch_size=2,
                              sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[counter], load_from=str(tmp_path / 'nope.pth'),
        resume=resume, default_scope='mmaction',
        experiment_name=f'missing_load_from_{os.getpid()}_{resume}')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        runner.train()
    assert counter.iters == 0


# --------------------------------------------------------------------------
# The checkpoint --resume continues from.
def test_resume_passes_over_a_truncated_checkpoint(tmp_path):
    good = _complete_checkpoint(tmp_path / 'epoch_2.pth')
    bad = tmp_path / 'epoch_3.pth'
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    os.utime(bad, (time.time() + 5, time.time() + 5))  # the newest file
    (tmp_path / 'last_checkpoint').write_text(str(bad))
    assert 'truncated' in checkpoint_problem(str(bad))
    assert checkpoint_problem(str(good)) is None
    assert find_resumable_checkpoint(str(tmp_path)) == str(good)


def test_resume_search_order_and_problems(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) is None
    assert checkpoint_problem(str(tmp_path / 'x.pth')) == \
        'the file does not exist'
    assert checkpoint_problem(str(tmp_path)) == 'it is a directory'
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert checkpoint_problem(str(tmp_path / 'empty.pth')) == \
        'the file is empty (0 bytes)'
    old = _complete_checkpoint(tmp_path / 'epoch_1.pth')
    new = _complete_checkpoint(tmp_path / 'epoch_2.pth')
    best = _complete_checkpoint(tmp_path / 'best_acc_epoch_2.pth')
    os.utime(old, (time.time() - 20, time.time() - 20))
    os.utime(new, (time.time() - 10, time.time() - 10))
    assert find_resumable_checkpoint(str(tmp_path)) == str(new)  # not best
    assert best.exists()
    # last_checkpoint comes first, whatever the times.
    (tmp_path / 'last_checkpoint').write_text(str(old) + '\n')
    assert find_resumable_checkpoint(str(tmp_path)) == str(old)
