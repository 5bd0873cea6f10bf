"""The measured CPU peak of one training step, for checking memory plans.

:func:`measure_step` runs this file in a fresh interpreter per case, so
that the resident set holds nothing from earlier cases. The child:

1. tells glibc to serve every allocation of 64 KiB or more with its own
   ``mmap`` and to give freed memory back at once (``M_MMAP_THRESHOLD`` and
   ``M_TRIM_THRESHOLD``, as docs/performance.md describes), so the resident
   set follows what is allocated instead of what the heap kept;
2. builds the config's model on the CPU and its optimizer wrapper
   (``BF16OptimWrapper`` for bf16), and runs one training step with
   mmengine's ``model.train_step`` (libraries initialise, the optimizer
   states are made);
3. resets the kernel's high-water mark (``/proc/self/clear_refs``), runs a
   second step and prints the growth of ``VmHWM`` over the resident set
   before it, as JSON.

On a GPU (``"device": "cuda"``) it builds the model there (mmengine's
``AmpOptimWrapper`` for bf16) and reports ``torch.cuda.max_memory_allocated``
of the second step, absolute and over ``memory_allocated`` before it.

    python tools/vivit_cli/memory_measure.py '{"config": "configs/...",
        "options": {}, "batch": 8, "precision": "fp32", "with_cp": false}'
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]


def run(job: dict) -> dict:
    """Measure the job; see the module docstring."""
    sys.path.insert(0, str(ROOT / 'tools' / 'analysis_tools'))
    from vivit_bench.rss import mmap_large_blocks, reset_peak, status_bytes
    tuned = mmap_large_blocks()
    import torch
    from mmengine.config import Config

    import vivit_mm  # noqa: F401  (registers the modules)
    from vivit_mm.utils.build import build_model
    sys.path.insert(0, str(ROOT / 'tools'))
    from vivit_cli.memory_plan import (_clip_shape, _samples, build_wrapper,
                                       optimizer_cfg)

    device = job.get('device', 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('measuring on cuda needs a CUDA device; '
                         'torch.cuda.is_available() is False here.')
    torch.set_num_threads(int(job.get('threads', 2)))
    torch.manual_seed(0)
    cfg = Config.fromfile(job['config'])
    if job.get('options'):
        cfg.merge_from_dict(job['options'])
    cfg.model.backbone.with_cp = bool(job['with_cp'])
    model = build_model(cfg.model, device).train()
    ow_cfg = optimizer_cfg(cfg, device)
    if job['precision'] == 'bf16':
        ow_cfg.update(type='AmpOptimWrapper', dtype='bfloat16') \
            if device == 'cuda' else ow_cfg.update(type='BF16OptimWrapper')
    elif job['precision'] != 'fp32':
        raise ValueError('the measurement runs fp32 or bf16, got '
                         f"{job['precision']!r}.")
    optim_wrapper = build_wrapper(model, ow_cfg)
    shape = _clip_shape(model)
    raw = [torch.randint(0, 256, (1, *shape), dtype=torch.uint8)
           for _ in range(int(job['batch']))]
    samples = _samples(len(raw))

    def step():
        model.train_step(dict(inputs=list(raw), data_samples=samples),
                         optim_wrapper)

    step()
    if device == 'cuda':
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return dict(increase=peak - before, allocated_before=before,
                    max_allocated=peak,
                    max_reserved=torch.cuda.max_memory_reserved(),
                    total=torch.cuda.get_device_properties(0).total_memory,
                    gpu=torch.cuda.get_device_name(0))
    before = status_bytes('VmRSS')
    method = 'VmHWM' if reset_peak() else None
    step()
    peak = status_bytes('VmHWM') if method else None
    return dict(increase=None if peak is None else peak - before,
                rss_before=before, rss_peak=peak, malloc_tuned=tuned,
                threads=torch.get_num_threads())


def measure_step(config: str, batch: int, precision: str = 'fp32',
                 with_cp: bool = False, options: Optional[dict] = None,
                 threads: int = 2, timeout: float = 1800,
                 device: str = 'cpu') -> dict:
    """Run :func:`run` in a fresh interpreter and return its result
    (``increase``: bytes of the measured step's peak above the resident
    set before it; None where ``/proc`` cannot be reset)."""
    job = dict(config=str(config), batch=int(batch), precision=precision,
               with_cp=bool(with_cp), options=options or {},
               threads=threads, device=device)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    proc = subprocess.run([sys.executable, __file__, json.dumps(job)],
                          capture_output=True, text=True, timeout=timeout,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError('the measurement failed:\n' + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python tools/vivit_cli/memory_measure.py JOB_JSON')
    print(json.dumps(run(json.loads(sys.argv[1]))))
