"""tools/train.py: a 2-epoch run on generated videos (the K400 Model 2
config, model and sizes shrunk), resume, torch.compile with a paramwise_cfg,
bf16 on the CPU."""
import math
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO
from tests.tools.helpers import run
from vivit_mm.convert.io import safe_load

TRAIN = str(REPO / 'tools' / 'train.py')


def expected_lr(i, base=0.1, iters_per_epoch=3, epochs=30):
    """The config's schedule at iteration i: 2.5 warm-up epochs from
    1e-3 x base, then cosine to 0 at the last epoch."""
    warm = int(2.5 * iters_per_epoch)
    if i < warm:
        return base * (1e-3 + (1 - 1e-3) * min(i, warm - 1) / (warm - 1))
    return base * 0.5 * (1 + math.cos(math.pi * (i - warm) /
                                      (epochs * iters_per_epoch - warm)))


def test_train_saves_then_resumes(trained):
    ckpt2 = safe_load(trained / 'wd' / 'epoch_2.pth')
    assert ckpt2['meta']['epoch'] == 2 and ckpt2['meta']['iter'] == 6
    proc = run([sys.executable, TRAIN, str(trained / 'cfg.py'),
                '--work-dir', str(trained / 'wd_resume'), '--resume',
                str(trained / 'wd' / 'epoch_2.pth'), '--cfg-options',
                'train_cfg.max_epochs=3'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt3 = safe_load(trained / 'wd_resume' / 'epoch_3.pth')
    assert ckpt3['meta']['epoch'] == 3 and ckpt3['meta']['iter'] == 9
    # The log history, optimizer and scheduler were restored: 9 learning
    # rates that follow the schedule without restarting the warm-up.
    lrs = ckpt3['message_hub']['log_scalars']['train/lr'].data[0]
    np.testing.assert_allclose(lrs, [expected_lr(i) for i in range(9)],
                               rtol=1e-6)
    np.testing.assert_array_equal(
        lrs[:6], ckpt2['message_hub']['log_scalars']['train/lr'].data[0])
    assert 'momentum_buffer' in str(ckpt3['optimizer']['state'])
    w2 = ckpt2['state_dict']['cls_head.fc_cls.weight']
    assert not torch.equal(w2, ckpt3['state_dict']['cls_head.fc_cls.weight'])


def test_train_compile_with_paramwise_cfg_matches_eager(trained, tmp_path):
    """compile=True with a paramwise_cfg (ConfigDict param groups, which
    dynamo cannot trace on their own) trains, and gives the weights of the
    same run without compile. Dynamo's 'eager' backend keeps it fast: the
    failure it guards against is in dynamo's tracing, not in inductor."""
    cfg = Config.fromfile(str(trained / 'cfg.py'))
    cfg.optim_wrapper.paramwise_cfg = dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={'cls_token': dict(lr_mult=10.0, decay_mult=0.0)})
    cfg.train_cfg.update(max_epochs=1, val_interval=10)
    cfg_path = tmp_path / 'paramwise.py'
    cfg.dump(str(cfg_path))
    results = {}
    for name, extra in (('eager', []),
                        ('compiled', ['--cfg-options',
                                      'compile.backend=eager'])):
        proc = run([sys.executable, TRAIN, str(cfg_path),
                    '--work-dir', str(tmp_path / name)] + extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = (proc.stdout + proc.stderr,
                         safe_load(tmp_path / name / 'epoch_1.pth'))
    log, ckpt = results['compiled']
    assert 'Model has been "compiled"' in log
    assert 'made plain dicts' in log
    assert 'Model has been "compiled"' not in results['eager'][0]
    eager = results['eager'][1]['state_dict']
    for k, v in ckpt['state_dict'].items():
        torch.testing.assert_close(v, eager[k], rtol=1e-5, atol=1e-6)
    # the custom key's 10x learning rate survived the conversion
    groups = ckpt['optimizer']['param_groups']
    assert {g['lr_mult'] for g in groups if 'lr_mult' in g} == {10.0}


def test_train_amp_on_cpu_trains_in_bf16(trained, tmp_path):
    """--amp without CUDA: BF16OptimWrapper, float32 checkpoint."""
    proc = run([sys.executable, TRAIN, str(trained / 'cfg.py'),
                '--work-dir', str(tmp_path / 'amp'), '--amp',
                '--cfg-options', 'train_cfg.max_epochs=1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "type='BF16OptimWrapper'" in log
    state = safe_load(tmp_path / 'amp' / 'epoch_1.pth')['state_dict']
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all()
               for v in state.values() if v.is_floating_point())


def test_tensorboard_switch_writes_an_event_file(trained, tmp_path):
    pytest.importorskip('tensorboard')
    proc = run([sys.executable, TRAIN, str(trained / 'cfg.py'),
                '--work-dir', str(tmp_path / 'tb'), '--tensorboard',
                '--cfg-options', 'train_cfg.max_epochs=1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = list((tmp_path / 'tb').rglob('events.out.tfevents.*'))
    assert events and events[0].stat().st_size > 0
    assert "type='TensorboardVisBackend'" in proc.stdout + proc.stderr
