"""Training with ``SkipBadVideosDataset`` and ``SkippedVideosHook``: epochs
complete with substitutes, one warning per unreadable file, a count per
epoch (DataLoader workers included)."""
import re

import pytest
from mmengine.runner import Runner

from tests.datasets.conftest import (dataset_cfg, tiny_recognizer_cfg,
                                     videos, write_list)  # noqa: F401
from tests.engine.conftest import close_workers, experiment_name, read_logs


@pytest.mark.parametrize('workers', [0, 1])
def test_skip_bad_videos_completes_epochs_and_counts(tmp_path, videos,
                                                     workers):
    ann = write_list(tmp_path, videos)
    dataset = dict(type='SkipBadVideosDataset', max_bad_ratio=0.5,
                   dataset=dataset_cfg(ann, videos))
    runner = Runner(
        model=tiny_recognizer_cfg().model, work_dir=str(tmp_path / 'wd'),
        train_dataloader=dict(dataset=dataset, batch_size=2,
                              num_workers=workers,
                              persistent_workers=workers > 0,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[dict(type='SkippedVideosHook')],
        default_scope='mmaction',
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), log_level='INFO',
        experiment_name=experiment_name('skipped_videos'))
    runner.train()
    close_workers(runner)
    assert runner.epoch == 2 and runner.iter == 10  # 5 batches per epoch
    skipper = runner.train_dataloader.dataset
    assert skipper.bad_indices() == [1, 4, 7]
    assert skipper.num_skipped == 6  # 3 bad files x 2 epochs
    log = read_logs(tmp_path / 'wd')
    for name in ('missing.mp4', 'empty.mp4', 'truncated.mp4'):
        # one warning per file, with the reason
        assert len(re.findall(rf'skipping unreadable video \S*{name}',
                              log)) == 1, name
    assert 'does not exist' in log and 'empty (0 bytes)' in log
    assert len(re.findall(r'Epoch \d: skipped 3 videos', log)) == 2
    assert '3 unreadable files found so far' in log
    assert runner.message_hub.get_info('skipped_videos') == 3


def test_without_the_wrapper_the_hook_does_nothing(tmp_path):
    from types import SimpleNamespace

    from vivit_mm.engine import SkippedVideosHook
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=[]))
    SkippedVideosHook().after_train_epoch(runner)  # no logger, no hub used
