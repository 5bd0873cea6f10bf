"""``WeightsOnlyCheckpointHook``: the checkpoints a Runner saves hold only
what ``torch.load(weights_only=True)`` reads with vivit_mm's allow-list,
round trip (log history, metrics) and reload in ``load_from``, ``resume``,
``Runner.test`` and ``init_recognizer``."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from torch.utils.data import Dataset

from tests.engine.conftest import (DropoutToy, experiment_name,
                                   pickle_globals)
from vivit_mm.compat import PlainHistoryBuffer
from vivit_mm.convert.io import safe_load


class _ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(4, generator=g), y=torch.tensor(i % 3))


class _ToyAcc(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results += [(int(a), int(b)) for a, b in data_samples]

    def compute_metrics(self, results):
        return dict(acc=np.mean([a == b for a, b in results]))  # np.float64


def _runner(work_dir, max_epochs=2, resume=False, load_from=None):
    """A Runner whose checkpoints hold what real ones hold: HistoryBuffers,
    numpy scalars (eta, best_score), optimizer and scheduler states."""
    loader = dict(dataset=_ToyData(), batch_size=4,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    torch.manual_seed(0)
    return Runner(
        DropoutToy(), work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=loader, val_evaluator=[_ToyAcc()],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        val_cfg=dict(), test_dataloader=loader, test_evaluator=[_ToyAcc()],
        test_cfg=dict(), optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, end=3,
                             by_epoch=False),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=1, save_best='acc')),
        custom_hooks=[dict(type='WeightsOnlyCheckpointHook')],
        resume=resume, load_from=load_from, randomness=dict(seed=0),
        default_scope='mmaction', log_level='WARNING',
        experiment_name=experiment_name('weights_only'))


@pytest.fixture(scope='module')
def runner_ckpt(tmp_path_factory):
    """Train the toy Runner 2 epochs; returns (work_dir, message hub)."""
    work_dir = tmp_path_factory.mktemp('toy')
    runner = _runner(work_dir)
    runner.train()
    return work_dir, runner.message_hub


def test_runner_checkpoint_needs_only_the_allow_list(runner_ckpt):
    work_dir, _ = runner_ckpt
    for path in [work_dir / 'epoch_2.pth'] + list(work_dir.glob('best_*')):
        names = pickle_globals(path)
        # The log history, as the hook saves it.
        assert 'vivit_mm.compat.PlainHistoryBuffer' in names
        assert 'mmengine.logging.history_buffer.HistoryBuffer' not in names
        # No method references, no numpy at all: the gadgets stay out.
        assert 'builtins.getattr' not in names
        assert not any(n.startswith('numpy') for n in names), names
        assert torch.serialization.get_unsafe_globals_in_checkpoint(
            str(path)) == []


def test_runner_checkpoint_round_trip(runner_ckpt):
    work_dir, hub = runner_ckpt
    ckpt = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    scalars = ckpt['message_hub']['log_scalars']
    # Saved in the 2nd epoch: 4 train iterations, 1 or 2 validations
    # (mmengine saves after validation when the best score improved).
    for key, sizes in (('train/loss', (4, )), ('train/lr', (4, )),
                       ('val/acc', (1, 2))):
        buf = scalars[key]
        assert isinstance(buf, PlainHistoryBuffer)
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
    assert type(info['best_score']) is float
    assert info['best_score'] == hub.get_info('best_score')
    assert ckpt['meta']['epoch'] == 2
    # The weights and the optimizer state are untouched tensors.
    assert all(torch.is_tensor(v) for v in ckpt['state_dict'].values())
    assert ckpt['optimizer']['param_groups'][0]['momentum'] == 0.9


def test_runner_resumes_and_tests_from_its_checkpoint(runner_ckpt, tmp_path):
    work_dir, hub = runner_ckpt
    ckpt = str(work_dir / 'epoch_2.pth')
    resumed = _runner(tmp_path / 'resume', max_epochs=3, resume=True,
                      load_from=ckpt)
    resumed.train()
    assert resumed.epoch == 3 and resumed.iter == 6
    # The restored log history continues: 2 iterations per epoch.
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == 6
    np.testing.assert_array_equal(
        resumed.message_hub.get_scalar('train/loss').data[0][:4],
        hub.get_scalar('train/loss').data[0])
    # ... and saves loadable checkpoints again.
    assert safe_load(tmp_path / 'resume' / 'epoch_3.pth')['meta'][
        'epoch'] == 3
    tester = _runner(tmp_path / 'test', load_from=ckpt)
    assert set(tester.test()) == {'acc'}
    sd = safe_load(ckpt)['state_dict']
    torch.testing.assert_close(tester.model.fc.weight, sd['fc.weight'])


def test_init_recognizer_reads_a_runner_checkpoint(runner_ckpt, tmp_path):
    from mmaction.apis import init_recognizer
    from mmaction.registry import MODELS

    from tests.datasets.conftest import tiny_recognizer_cfg
    work_dir, _ = runner_ckpt
    cfg = tiny_recognizer_cfg()
    weights = MODELS.build(cfg.model).state_dict()
    # What the Runner saved around the weights, with a recognizer's weights.
    ckpt = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    ckpt['state_dict'] = {k: torch.full_like(v, 0.25)
                          for k, v in weights.items()}
    path = tmp_path / 'recognizer.pth'
    torch.save(ckpt, path)
    model = init_recognizer(cfg, str(path), device='cpu')
    assert (model.backbone.cls_token == 0.25).all()
