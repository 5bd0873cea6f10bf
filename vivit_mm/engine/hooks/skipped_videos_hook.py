"""Log how many unreadable videos :class:`SkipBadVideosDataset` skipped."""
import logging
import torch
from mmaction.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from ...datasets.wrappers import SkipBadVideosDataset, find_wrapped
from ...utils import checks


@HOOKS.register_module()
class SkippedVideosHook(Hook):
    """At the end of every training epoch, log how many samples
    :class:`SkipBadVideosDataset` replaced because their video was
    unreadable (summed over DataLoader workers and ranks), and which files.

    The epoch's count is also kept as the message hub's runtime info
    ``skipped_videos``. Without a ``SkipBadVideosDataset`` in the training
    data the hook does nothing.

    Args:
        max_files (int): How many of the unreadable files to name in the
            log line. Defaults to 10.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, max_files: int = 10) -> None:
        self.max_files = checks.non_negative_int(max_files, 'max_files',
                                                 'SkippedVideosHook')
        self._seen = 0  # skips already reported

    def after_train_epoch(self, runner) -> None:
        """Log the epoch's skips and the unreadable files so far."""
        skipper = find_wrapped(runner.train_dataloader.dataset,
                               SkipBadVideosDataset)
        if skipper is None:
            return
        total = skipper.num_skipped
        counts = torch.tensor([total - self._seen, len(skipper.bad_indices())],
                              dtype=torch.float64)
        self._seen = total
        if get_world_size() > 1:
            all_reduce(counts, op='sum')
        skipped, n_bad = int(counts[0]), int(counts[1])
        runner.message_hub.update_info('skipped_videos', skipped)
        files = skipper.bad_files()
        named = ', '.join(repr(f) for f in files[:self.max_files])
        more = ' ...' if len(files) > self.max_files else ''
        msg = (f'Epoch {runner.epoch + 1}: skipped {skipped} videos '
               f'(unreadable, replaced by other samples); {n_bad} '
               'unreadable files found so far'
               + (f' (this rank: {named}{more})' if files else '') + '.')
        runner.logger.log(logging.WARNING if skipped else logging.INFO, msg)
