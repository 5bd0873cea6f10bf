"""``tools/test.py --dump``: predictions kept as they come, not only at the
end."""
import glob
import os
import pickle
from typing import Any, List, Sequence

from mmaction.registry import METRICS
from mmengine.dist import get_rank, get_world_size
from mmengine.evaluator.metric import DumpResults, _to_cpu


@METRICS.register_module()
class StreamingDumpResults(DumpResults):
    """mmengine's ``DumpResults`` (the whole ``.pkl`` written at the end),
    which also appends every batch's predictions to ``FILE.parts`` (one
    file per rank in distributed runs: ``FILE.parts.rank{r}``) as soon as
    the batch is done, flushed to disk. A run stopped by an unreadable video
    or killed keeps the predictions it made: :func:`read_parts` reads them.
    The parts are removed once the ``.pkl`` is written.
    """

    def __init__(self, out_file_path: str, **kwargs) -> None:
        super().__init__(out_file_path, **kwargs)
        self.parts = out_file_path + '.parts' + (
            f'.rank{get_rank()}' if get_world_size() > 1 else '')
        if os.path.exists(self.parts):
            os.remove(self.parts)  # a new run: its own predictions only

    def process(self, data_batch: Any, predictions: Sequence[dict]) -> None:
        predictions = _to_cpu(list(predictions))
        self.results.extend(predictions)
        with open(self.parts, 'ab') as f:
            pickle.dump(predictions, f)
            f.flush()
            os.fsync(f.fileno())

    def compute_metrics(self, results: list) -> dict:
        out = super().compute_metrics(results)
        for path in glob.glob(glob.escape(self.out_file_path) + '.parts*'):
            os.remove(path)
        return out


def read_parts(path: str) -> List[dict]:
    """The predictions of a ``FILE.parts`` file, in the order they were
    made (a batch cut by a kill is left out). Unpickles: read only files
    your own runs wrote."""
    out: List[dict] = []
    with open(path, 'rb') as f:
        while True:
            try:
                out.extend(pickle.load(f))
            except (EOFError, pickle.UnpicklingError):
                return out


__all__ = ['StreamingDumpResults', 'read_parts']
