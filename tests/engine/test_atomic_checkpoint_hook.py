"""``AtomicCheckpointHook`` and the ``atomic_local`` file backend: a kill
while saving keeps the last complete checkpoint, ``last_checkpoint`` always
names a complete file, and old checkpoints are pruned only after the new
one is complete."""
import inspect
import os

import pytest
from mmengine.fileio import get_file_backend
from mmengine.hooks import CheckpointHook

import vivit_mm.engine.file_backends as file_backends
from tests.engine.conftest import toy_runner
from vivit_cli.preflight import checkpoint_problem, find_resumable_checkpoint
from vivit_mm.convert.io import safe_load
from vivit_mm.engine import AtomicCheckpointHook
from vivit_mm.engine.file_backends import TMP_SUFFIX, AtomicLocalBackend


def _on_checkpoint_rename(monkeypatch, action):
    """Call ``action(src, dst, n)`` instead of renaming the n-th finished
    ``.pth`` temporary file of the atomic backend (n from 1); ``action``
    returns True to rename it after all."""
    real = os.replace
    count = [0]

    def replace(src, dst):
        if str(dst).endswith('.pth'):
            count[0] += 1
            if not action(src, dst, count[0]):
                return None
        return real(src, dst)

    monkeypatch.setattr(file_backends.os, 'replace', replace)


def test_kill_while_saving_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    def kill_second(src, dst, n):
        if n < 2:
            return True
        # The process dies half-way through writing the temporary file.
        size = os.path.getsize(src)
        with open(src, 'r+b') as f:
            f.truncate(size // 2)
        raise KeyboardInterrupt('killed while saving')

    _on_checkpoint_rename(monkeypatch, kill_second)
    runner = toy_runner(tmp_path, 3, checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    last = (tmp_path / 'last_checkpoint').read_text().strip()
    assert last == str(tmp_path / 'epoch_1.pth')
    assert not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / ('epoch_2.pth' + TMP_SUFFIX)).exists()  # stale
    assert checkpoint_problem(last) is None
    assert safe_load(last)['meta']['epoch'] == 1
    assert find_resumable_checkpoint(str(tmp_path)) == last


def test_old_checkpoints_go_only_after_the_new_one_is_complete(
        tmp_path, monkeypatch):
    seen = []

    def record(src, dst, n):
        seen.append(sorted(p for p in os.listdir(tmp_path)
                           if p.endswith('.pth')))
        return True

    _on_checkpoint_rename(monkeypatch, record)
    runner = toy_runner(tmp_path, 3, checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))
    runner.train()
    # While epoch_3.pth was written, epochs 1 and 2 were still there.
    assert seen == [[], ['epoch_1.pth'], ['epoch_1.pth', 'epoch_2.pth']]
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == [
        'epoch_2.pth', 'epoch_3.pth']
    assert not list(tmp_path.glob('*' + TMP_SUFFIX))
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_3.pth')


def test_iteration_checkpoints_are_pruned_too(tmp_path):
    runner = toy_runner(tmp_path, 2, checkpoint=dict(
        type='AtomicCheckpointHook', interval=2, by_epoch=False,
        max_keep_ckpts=1))
    runner.train()
    assert [p.name for p in tmp_path.glob('*.pth')] == ['iter_8.pth']
    assert checkpoint_problem(str(tmp_path / 'iter_8.pth')) is None


def test_pruning_follows_any_filename_template(tmp_path):
    runner = toy_runner(tmp_path, 3, checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1,
        filename_tmpl='ckpt_{:03d}.pth'))
    runner.train()
    assert [p.name for p in tmp_path.glob('*.pth')] == ['ckpt_003.pth']


def test_remote_output_keeps_mmengine_behaviour():
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=2,
                                out_dir='s3://bucket/run')
    assert not hook.atomic and hook.max_keep_ckpts == 2
    local = AtomicCheckpointHook(interval=1, max_keep_ckpts=2)
    assert local.atomic and local.max_keep_ckpts == -1
    assert local.backend_args == dict(backend='atomic_local')


# --------------------------------------------------------------------------
# The atomic_local backend.
def test_atomic_local_backend_writes_all_or_nothing(tmp_path, monkeypatch):
    backend = get_file_backend(str(tmp_path),
                               backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    path = tmp_path / 'sub' / 'file.bin'
    backend.put(b'first', str(path))
    assert path.read_bytes() == b'first'
    backend.put_text('second', str(path))
    assert backend.get_text(str(path)) == 'second'
    assert sorted(os.listdir(path.parent)) == ['file.bin']

    def fail_fsync(fd):
        raise OSError('disk gone')

    monkeypatch.setattr(file_backends.os, 'fsync', fail_fsync)
    with pytest.raises(OSError, match='disk gone'):
        backend.put(b'third', str(path))
    assert path.read_bytes() == b'second'  # the old content, whole


# --------------------------------------------------------------------------
# What AtomicCheckpointHook relies on in mmengine's CheckpointHook.
def test_checkpoint_hook_interface_it_relies_on(tmp_path):
    hook = CheckpointHook(interval=1)
    for name in ('filename_tmpl', 'last_ckpt', 'out_dir', 'max_keep_ckpts',
                 'backend_args'):
        assert hasattr(hook, name), name
    assert hook.filename_tmpl == 'epoch_{}.pth' and hook.last_ckpt is None
    assert CheckpointHook(interval=1, by_epoch=False).filename_tmpl == \
        'iter_{}.pth'
    params = inspect.signature(CheckpointHook.__init__).parameters
    assert {'max_keep_ckpts', 'out_dir', 'backend_args',
            'filename_tmpl'} <= set(params)
    assert list(inspect.signature(
        CheckpointHook.after_train_epoch).parameters) == ['self', 'runner']
    assert list(inspect.signature(
        CheckpointHook.after_train_iter).parameters) == [
            'self', 'runner', 'batch_idx', 'data_batch', 'outputs']
    # last_ckpt names the file the stage just saved, in out_dir.
    runner = toy_runner(tmp_path, 1, checkpoint=dict(type='CheckpointHook',
                                                     interval=1))
    runner.train()
    saved = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    assert saved.out_dir == str(tmp_path)
    assert saved.last_ckpt == os.path.join(saved.out_dir,
                                           saved.filename_tmpl.format(1))
    # Only public stages are overridden.
    overridden = {name for name, value in vars(AtomicCheckpointHook).items()
                  if callable(value) and hasattr(CheckpointHook, name)}
    assert overridden == {'__init__', 'after_train_epoch',
                          'after_train_iter'}
