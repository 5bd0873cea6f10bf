"""Checkpoints load with ``weights_only=True`` and an exact allow-list:
Runner checkpoints load (test, resume, init_recognizer), code-running pickles
are refused on every load path and never run."""
import os
import pickletools
import zipfile

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn
from torch.utils.data import Dataset

from vivit_mm.utils.checkpoint import safe_globals, safe_load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERT_TOOL = os.path.join(REPO, 'tools', 'misc',
                            'convert_legacy_checkpoint.py')


# --------------------------------------------------------------------------
# A tiny Runner whose checkpoints hold what real ones hold: HistoryBuffers,
# numpy scalars (eta, best_score), optimizer and scheduler states.
_RUNS = 0


class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x, y, mode='tensor'):
        out = self.fc(x)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, y))
        return list(zip(out.argmax(1), y))


class _ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(2, generator=g), y=torch.tensor(i % 2))


class _ToyAcc(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results += [(int(a), int(b)) for a, b in data_samples]

    def compute_metrics(self, results):
        return dict(acc=np.mean([a == b for a, b in results]))  # np.float64


def _toy_runner(work_dir, max_epochs=2, resume=False, load_from=None):
    # A unique experiment name: mmengine shares the MessageHub of Runners
    # whose (timestamp) names coincide.
    global _RUNS
    _RUNS += 1
    loader = dict(dataset=_ToyData(), batch_size=4,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    torch.manual_seed(0)
    return Runner(
        _ToyModel(), work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=loader, val_evaluator=[_ToyAcc()],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        val_cfg=dict(), optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, end=3,
                             by_epoch=False),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=1, save_best='acc')),
        resume=resume, load_from=load_from, randomness=dict(seed=0),
        experiment_name=f'toy_{os.getpid()}_{_RUNS}')


@pytest.fixture(scope='module')
def runner_ckpt(tmp_path_factory):
    """Train the toy Runner 2 epochs; returns (work_dir, message hub)."""
    work_dir = tmp_path_factory.mktemp('toy')
    runner = _toy_runner(work_dir)
    runner.train()
    return work_dir, runner.message_hub


def _pickle_globals(path):
    """All GLOBAL names in a torch zip checkpoint, read from the opcodes."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith('data.pkl'))
        data = z.read(name)
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            strings.append(arg)
        elif op.name == 'GLOBAL':
            names.add(arg.replace(' ', '.'))
        elif op.name == 'STACK_GLOBAL':
            names.add(f'{strings[-2]}.{strings[-1]}')
    # Protocol 2 writes Python 2 names for builtins.
    return {n.replace('__builtin__.', 'builtins.') for n in names}


def test_runner_checkpoint_needs_only_the_allow_list(runner_ckpt):
    work_dir, _ = runner_ckpt
    path = work_dir / 'epoch_2.pth'
    names = _pickle_globals(path)
    # What a Runner checkpoint holds besides torch's own types.
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in names
    assert any(n.endswith('multiarray.scalar') for n in names)
    # No method references, no arrays: the gadgets stay out.
    assert 'builtins.getattr' not in names
    assert not any(n.endswith(('_reconstruct', 'numpy.ndarray'))
                   for n in names)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path)) == []


def test_allow_list_is_exact():
    names = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__name__}'
             for g in safe_globals()}
    numeric = ['Bool'] + [f'{p}{b}' for p in ('Int', 'UInt')
                          for b in (8, 16, 32, 64)] + [
                              f'Float{b}' for b in (16, 32, 64)]
    assert names == {
        'mmengine.logging.history_buffer.HistoryBuffer',
        'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar',
        'numpy.dtype'
    } | {f'numpy.dtypes.{n}DType' for n in numeric}
    for name in names:  # what the torch-wide allow-list now contains
        assert name in {g[1] if isinstance(g, tuple) else
                        f'{g.__module__}.{g.__name__}'
                        for g in torch.serialization.get_safe_globals()}


def test_runner_checkpoint_round_trip(runner_ckpt):
    work_dir, hub = runner_ckpt
    ckpt = safe_load(work_dir / 'epoch_2.pth')
    scalars = ckpt['message_hub']['log_scalars']
    # Saved in the 2nd epoch: 4 train iterations, 1 or 2 validations
    # (mmengine saves after validation when the best score improved).
    for key, sizes in (('train/loss', (4, )), ('train/lr', (4, )),
                       ('val/acc', (1, 2))):
        buf = scalars[key]
        assert isinstance(buf, HistoryBuffer)
        ref = hub.get_scalar(key)
        n = len(buf.data[0])
        assert n in sizes
        np.testing.assert_array_equal(buf.data[0], ref.data[0][:n])
        np.testing.assert_array_equal(buf.data[1], ref.data[1][:n])
        assert buf.data[0].dtype == ref.data[0].dtype
        assert buf.max_length == ref.max_length
        assert buf.mean() == pytest.approx(ref.data[0][:n].mean())
        assert buf.statistics('current') == ref.data[0][n - 1]
    info = ckpt['message_hub']['runtime_info']
    assert isinstance(info['best_score'], np.float64)
    assert ckpt['meta']['epoch'] == 2


def test_runner_resumes_and_tests_from_its_checkpoint(runner_ckpt, tmp_path):
    work_dir, hub = runner_ckpt
    ckpt = str(work_dir / 'epoch_2.pth')
    resumed = _toy_runner(tmp_path / 'resume', max_epochs=3, resume=True,
                          load_from=ckpt)
    resumed.train()
    assert resumed.epoch == 3 and resumed.iter == 6
    # The restored log history continues: 2 iterations per epoch.
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == 6
    np.testing.assert_array_equal(
        resumed.message_hub.get_scalar('train/loss').data[0][:4],
        hub.get_scalar('train/loss').data[0])
    tester = _toy_runner(tmp_path / 'test', load_from=ckpt)
    tester.load_or_resume()
    sd = safe_load(ckpt)['state_dict']
    torch.testing.assert_close(tester.model.fc.weight, sd['fc.weight'])


# --------------------------------------------------------------------------
# Hostile pickles.
class _Call:
    """Pickles as ``fn(*args)``: what a malicious checkpoint does."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __call__(self, *args):
        return self.fn(*args)

    def __reduce__(self):
        return (self.fn, self.args)


def _payloads(marker):
    m = str(marker)
    return {
        'os.system': _Call(os.system, (f'touch {m}', )),
        'builtins.exec': _Call(exec, (f'open({m!r}, "w").write("x")', )),
        # getattr(array, 'tofile')(path): why builtins.getattr must never be
        # allow-listed, even next to harmless numpy types.
        'getattr-tofile': _Call(
            _Call(getattr, (np.arange(3.0), 'tofile')), (m, )),
    }


@pytest.fixture(params=['os.system', 'builtins.exec', 'getattr-tofile'])
def hostile(request, tmp_path):
    """(checkpoint path, marker path) of a checkpoint whose unpickling
    creates the marker file."""
    marker = tmp_path / 'pwned'
    path = tmp_path / f'hostile_{request.param}.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1)),
                    meta=_payloads(marker)[request.param]), path)
    return path, marker


def test_hostile_payloads_really_run_without_safety(hostile):
    path, marker = hostile
    torch.load(path, weights_only=False)
    assert marker.exists()  # the payload is real: this test can fail


def test_safe_load_refuses_hostile(hostile, monkeypatch):
    path, marker = hostile
    # Even the env switch that turns torch's default off does not matter.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(ValueError, match='Refusing to load checkpoint'):
        safe_load(path)
    assert not marker.exists()


def test_mmengine_load_paths_refuse_hostile(hostile, tmp_path):
    path, marker = hostile
    with pytest.raises(ValueError, match='can run arbitrary code'):
        _load_checkpoint(str(path), map_location='cpu')  # load_from, resume
    with pytest.raises(ValueError):
        load_checkpoint(_ToyModel(), str(path))
    runner = _toy_runner(tmp_path / 'wd')
    with pytest.raises(ValueError):
        runner.load_checkpoint(str(path))
    with pytest.raises(ValueError):
        runner.resume(str(path))
    assert not marker.exists()


def test_init_recognizer_refuses_hostile(hostile):
    from mmaction.apis import init_recognizer
    path, marker = hostile
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'vivit_m4_k400.py'))
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                  feedforward_channels=64), img_size=32, num_frames=4)
    cfg.model.cls_head.in_channels = 32
    with pytest.raises(ValueError, match='Refusing'):
        init_recognizer(cfg, str(path), device='cpu')
    assert not marker.exists()


def test_numpy_arrays_are_not_allowed(tmp_path):
    path = tmp_path / 'array.pth'
    torch.save(dict(x=np.arange(3.0)), path)
    with pytest.raises(ValueError, match='numpy'):
        safe_load(path)


def test_legacy_mmengine_checkpoint_refused_then_converted(
        tmp_path, monkeypatch, capsys):
    from importlib.machinery import SourceFileLoader
    buf = HistoryBuffer([1.0, 2.0, 4.0], [1, 1, 2], max_length=10)
    legacy = tmp_path / 'legacy.pth'
    with monkeypatch.context() as m:  # mmengine's own pickling
        m.delattr(HistoryBuffer, '__reduce__')
        torch.save(dict(message_hub=dict(log_scalars={'loss': buf}),
                        eta=np.float64(1.5), arr=np.ones(2)), legacy)
    assert 'builtins.getattr' in _pickle_globals(legacy)
    with pytest.raises(ValueError, match='convert_legacy_checkpoint'):
        safe_load(legacy)

    tool = SourceFileLoader('convert_legacy', CONVERT_TOOL).load_module()
    out = tmp_path / 'converted.pth'
    assert tool.main([str(legacy), str(out)]) == 2  # needs --trust-source
    assert not out.exists()
    assert tool.main([str(legacy), str(out), '--trust-source']) == 0
    ckpt = safe_load(out)
    restored = ckpt['message_hub']['log_scalars']['loss']
    np.testing.assert_array_equal(restored.data[0], [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(restored.data[1], [1, 1, 2])
    assert restored.max_length == 10
    assert restored.mean() == pytest.approx(7.0 / 4.0)  # sum / counts
    assert ckpt['eta'] == 1.5 and ckpt['arr'] == [1.0, 1.0]


def test_converter_without_trust_never_unpickles(hostile):
    from importlib.machinery import SourceFileLoader
    path, marker = hostile
    tool = SourceFileLoader('convert_legacy', CONVERT_TOOL).load_module()
    assert tool.main([str(path), str(path) + '.out']) == 2
    assert not marker.exists()
