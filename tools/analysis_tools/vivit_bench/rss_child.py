"""The child process of :func:`vivit_bench.timing.peak_memory`:
the peak RSS growth of one training step, printed as JSON.

    python -m vivit_bench.rss_child '{"cfg": {...}, "batch": 2,
                                              "threads": 2}'

glibc is told to serve every allocation of 64 KiB or more by ``mmap``
(returned to the system when freed), so after a warm-up step (library
initialisation) RSS falls back to the model and input, and the next step's
high-water mark measures only what it allocates.
"""
import json
import sys

import torch

from .cases import Case, build, video_input
from .measure import peak_rss_delta
from .rss import mmap_large_blocks


def run(job: str) -> None:
    """Measure the job (JSON: ``cfg``, ``batch``, ``threads``) and print
    ``{"peak": bytes}`` (``null`` where unmeasurable)."""
    mmap_large_blocks()
    job = json.loads(job)
    torch.set_num_threads(job['threads'])
    model = build(job['cfg'], 'cpu').train()
    case = Case('child', model, video_input(model, job['batch']))
    case.train_step()
    model.zero_grad(set_to_none=True)  # RSS now: model and input only
    print(json.dumps(dict(peak=peak_rss_delta(case.train_step))))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python -m vivit_bench.rss_child JOB_JSON')
    run(sys.argv[1])
