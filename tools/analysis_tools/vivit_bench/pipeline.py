"""Input-pipeline benchmark of ``tools/analysis_tools/benchmark_pipeline.py``:
a config's own data pipeline, timed transform by transform in one worker
process, and how many data loader workers keep one accelerator fed.

* :func:`flatten_pipeline` / :func:`build_steps`: the config's transforms,
  those inside ``VideoReadGuard`` timed one by one (the guard itself only
  re-raises errors with the file name).
* :func:`time_pipeline`: per-transform seconds of each sample, round-robin
  over the videos, seeded per sample.
* :func:`summarise`: mean ms per sample and per view, samples/s and
  views/s per worker.
* :func:`model_rate` / :func:`workers_needed`: the accelerator's demand in
  samples/s, measured (``--model-clips-per-s``) or estimated from the
  model's FLOPs and a stated accelerator rate, and the workers it needs.

A *sample* is one item of the data set (one training clip; one test video
with all its views); a *view* is one clip the model sees (a test sample of
4 clips x 3 crops has 12).
"""
import math
import random
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

SPLITS = {'train': 'train_pipeline', 'val': 'val_pipeline',
          'test': 'test_pipeline'}
#: Forward + backward of a training step, in forward passes (the usual
#: 1 + 2 estimate for the backward pass).
TRAIN_STEP_FORWARDS = 3


def pipeline_of(cfg, split: str) -> list:
    """The pipeline config of a split (``train``/``val``/``test``)."""
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; one of {sorted(SPLITS)}')
    key = SPLITS[split]
    if key not in cfg:
        raise KeyError(f'the config has no {key}')
    return list(cfg[key])


def flatten_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """Transform configs with ``VideoReadGuard`` wrappers replaced by the
    transforms they wrap (each then timed on its own)."""
    out = []
    for t in pipeline:
        if t.get('type') == 'VideoReadGuard':
            out.extend(flatten_pipeline(t['transforms']))
        else:
            out.append(dict(t))
    return out


def build_steps(pipeline: Sequence[dict]) -> List[Tuple[str, object]]:
    """``(name, transform)`` pairs, built with MMAction2's registry; names
    made unique (``Resize``, ``Resize#2``)."""
    import vivit_mm  # noqa: F401  registers vivit_mm's transforms
    from mmaction.registry import TRANSFORMS
    steps, seen = [], {}
    for cfg in flatten_pipeline(pipeline):
        name = cfg['type']
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f'{name}#{seen[name]}'
        steps.append((label, TRANSFORMS.build(cfg)))
    return steps


def sample_results(filename, start_index: int = 0) -> dict:
    """The dict ``VideoDataset`` hands to a pipeline for one video."""
    return dict(filename=str(filename), label=0, start_index=start_index,
                modality='RGB')


def seed_sample(seed: int) -> None:
    """Seed the generators MMAction2's transforms draw from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch
    torch.manual_seed(seed)


def run_steps(steps, results: dict, times: Optional[dict] = None,
              cpu: Optional[dict] = None) -> dict:
    """Apply ``steps`` in order; add each one's wall seconds to ``times``
    and its CPU seconds (this process) to ``cpu``."""
    for name, transform in steps:
        t0, c0 = time.perf_counter(), time.process_time()
        results = transform(results)
        if times is not None:
            times.setdefault(name, []).append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.setdefault(name, []).append(time.process_time() - c0)
    return results


def num_views(results: dict) -> int:
    """Views (clips the model sees) in a packed sample."""
    inputs = results.get('inputs')
    if inputs is not None and getattr(inputs, 'ndim', 0) >= 5:
        return int(inputs.shape[0])  # NCTHW: views first
    return 1


def time_pipeline(steps, videos: Sequence, samples: int, seed: int = 0,
                  warmup: int = 1) -> dict:
    """Run the pipeline on ``samples`` samples (videos round-robin, sample
    ``k`` seeded with ``seed + k``) after ``warmup`` untimed ones.

    Returns:
        dict: ``times`` (name -> wall seconds per sample), ``total``
        (wall seconds per sample), ``cpu`` and ``cpu_total`` (the same in
        CPU seconds of this process: less sensitive to other load),
        ``views`` (views per sample), ``shape`` (of the packed
        input).
    """
    if samples < 1:
        raise ValueError(f'samples must be >= 1, got {samples}')
    if not videos:
        raise ValueError('no videos to run the pipeline on')
    for k in range(warmup):
        seed_sample(seed - 1 - k)
        run_steps(steps, sample_results(videos[k % len(videos)]))
    times: Dict[str, List[float]] = OrderedDict()
    cpu: Dict[str, List[float]] = OrderedDict()
    totals, cpu_totals, views, shape = [], [], 1, None
    for k in range(samples):
        seed_sample(seed + k)
        t0, c0 = time.perf_counter(), time.process_time()
        out = run_steps(steps, sample_results(videos[k % len(videos)]),
                        times, cpu)
        totals.append(time.perf_counter() - t0)
        cpu_totals.append(time.process_time() - c0)
        views = num_views(out)
        inputs = out.get('inputs')
        shape = tuple(inputs.shape) if inputs is not None else None
    return dict(times=times, total=totals, cpu=cpu, cpu_total=cpu_totals,
                views=views, shape=shape)


def summarise(result: dict) -> dict:
    """Mean wall ms per sample of each transform (its share, its CPU ms),
    samples/s and views/s of one worker (wall), and samples/s from CPU
    time (what an idle core would give, if the work is single-threaded)."""
    total = float(np.mean(result['total']))
    cpu_total = float(np.mean(result['cpu_total']))
    rows = [(name, 1e3 * float(np.mean(ts)), float(np.mean(ts)) / total,
             1e3 * float(np.mean(result['cpu'][name])))
            for name, ts in result['times'].items()]
    return dict(rows=rows, ms_per_sample=1e3 * total,
                cpu_ms_per_sample=1e3 * cpu_total,
                samples_per_s=1.0 / total,
                cpu_samples_per_s=1.0 / cpu_total,
                views_per_s=result['views'] / total, views=result['views'],
                shape=result['shape'], samples=len(result['total']))


def config_macs(cfg) -> Tuple[int, tuple]:
    """MACs of one view through the config's model, and its input shape
    (counted on the meta device: no weights are allocated)."""
    import copy

    from vivit_mm.utils.complexity import recognizer_complexity
    model = copy.deepcopy(cfg.model)
    # Mixup/CutMix (blending) draws from a Beta distribution when built,
    # which fails on the meta device; it adds no MACs to a view.
    (model.get('data_preprocessor') or {}).pop('blending', None)
    macs, _, shape = recognizer_complexity(model)
    return macs, shape


def model_rate(views_per_sample: int, split: str,
               model_clips_per_s: Optional[float] = None,
               macs: Optional[int] = None,
               accelerator_tflops: float = 312.0,
               utilisation: float = 0.4) -> dict:
    """What one accelerator consumes, in views/s and samples/s.

    ``model_clips_per_s`` (views/s, measured) wins; otherwise the estimate
    ``accelerator_tflops * utilisation / FLOPs per view`` with FLOPs =
    2 x MACs, times :data:`TRAIN_STEP_FORWARDS` for training.
    """
    if model_clips_per_s is not None:
        if model_clips_per_s <= 0:
            raise ValueError('--model-clips-per-s must be > 0')
        views_s, how = float(model_clips_per_s), 'measured (given)'
    else:
        if macs is None or macs <= 0:
            raise ValueError('give model_clips_per_s or the model MACs')
        if accelerator_tflops <= 0 or not 0 < utilisation <= 1:
            raise ValueError('--accelerator-tflops must be > 0 and '
                             '--utilisation in (0, 1]')
        flops = 2.0 * macs * (TRAIN_STEP_FORWARDS if split == 'train'
                              else 1)
        views_s = accelerator_tflops * 1e12 * utilisation / flops
        how = (f'estimate: {accelerator_tflops:g} TFLOP/s x '
               f'{utilisation:g} utilisation / {flops / 1e9:.0f} GFLOP per '
               f'view = 2 x {macs / 1e9:.1f} GMACs (the paper\'s "GFLOPs")'
               + (' x 3 (forward + backward)' if split == 'train' else ''))
    return dict(views_per_s=views_s,
                samples_per_s=views_s / views_per_sample, how=how)


def workers_needed(model_samples_per_s: float,
                   worker_samples_per_s: float) -> int:
    """Data loader workers (one CPU core each) that keep up."""
    return max(1, math.ceil(model_samples_per_s / worker_samples_per_s))


__all__ = ['SPLITS', 'pipeline_of', 'flatten_pipeline', 'build_steps',
           'time_pipeline', 'summarise', 'config_macs', 'model_rate',
           'workers_needed', 'run_steps', 'sample_results', 'seed_sample']
