"""Video decoders side by side on the same clips (same frame indices),
for ``tools/analysis_tools/benchmark_pipeline.py --decoders``.

Each decoder is a function ``(path, frame_inds) -> frames`` (uint8,
``N x H x W x 3``):

* ``decord``: MMAction2's ``DecordInit`` + ``DecordDecode`` (the configs'
  default; whichever ``decord`` is importable, its version is reported).
* ``pyav-index``: vivit_mm's ``PyAVIndexInit`` + ``PyAVIndexDecode``.
* ``pyav-index-skip``: the same, skipping unsampled non-reference frames
  (``skip_nonref=True``), to measure what skipping saves.
* ``mmaction-pyav``: MMAction2's ``PyAVInit`` + ``PyAVDecode`` (accurate
  mode: decodes every frame from the start).
* ``torchcodec``: vivit_mm's ``TorchCodecInit`` + ``TorchCodecDecode``
  (exact seek mode, one FFmpeg thread); needs FFmpeg's shared libraries
  on the system.
* ``decord+Resize`` against ``decord-scaled``: decode then MMAction2's
  ``Resize`` (cv2 bilinear), against decord's reader scaling while it
  decodes (``VideoReader(width=, height=)``, FFmpeg's scaler), both to the
  pipeline's short side.

Frames are compared with ``decord`` (``decord-scaled`` with
``decord+Resize``): max and mean absolute difference.
"""
import io
from typing import Callable, Dict, List, Sequence

import numpy as np

from .measure import time_interleaved


def _run(transforms, results):
    for t in transforms:
        results = t(results)
    return results


def _mmaction(init: str, decode: str, **init_args) -> Callable:
    import vivit_mm  # noqa: F401
    from mmaction.registry import TRANSFORMS
    steps = [TRANSFORMS.build(dict(type=init, **init_args)),
             TRANSFORMS.build(dict(type=decode))]

    def fn(path, inds):
        out = _run(steps[:1], dict(filename=str(path)))
        out['frame_inds'] = np.asarray(inds)
        return np.stack(_run(steps[1:], out)['imgs'])
    return fn


def _resize_size(shape, short_side: int):
    import mmcv
    h, w = shape[:2]
    return mmcv.rescale_size((w, h), (np.inf, short_side))  # (w, h)


def _decord_resize(short_side: int) -> Callable:
    from mmaction.registry import TRANSFORMS
    decode = _mmaction('DecordInit', 'DecordDecode')
    resize = TRANSFORMS.build(dict(type='Resize', scale=(-1, short_side)))

    def fn(path, inds):
        imgs = list(decode(path, inds))
        out = resize(dict(imgs=imgs, img_shape=imgs[0].shape[:2]))
        return np.stack(out['imgs'])
    return fn


def _decord_scaled(short_side: int) -> Callable:
    import decord

    def fn(path, inds):
        data = open(path, 'rb').read()
        probe = decord.VideoReader(io.BytesIO(data), num_threads=1)
        w, h = _resize_size(probe[0].shape, short_side)
        del probe
        vr = decord.VideoReader(io.BytesIO(data), num_threads=1, width=w,
                                height=h)
        return vr.get_batch(list(inds)).asnumpy()
    return fn


def available_decoders(short_side: int) -> Dict[str, object]:
    """Name -> decode function, or the reason (str) it is unavailable."""
    out: Dict[str, object] = {}
    makers = {
        'decord': lambda: _mmaction('DecordInit', 'DecordDecode'),
        'pyav-index': lambda: _mmaction('PyAVIndexInit', 'PyAVIndexDecode'),
        'pyav-index-skip': lambda: _mmaction(
            'PyAVIndexInit', 'PyAVIndexDecode', skip_nonref=True),
        'mmaction-pyav': lambda: _mmaction('PyAVInit', 'PyAVDecode'),
        'torchcodec': lambda: _mmaction('TorchCodecInit', 'TorchCodecDecode'),
        'decord+Resize': lambda: _decord_resize(short_side),
        'decord-scaled': lambda: _decord_scaled(short_side),
    }
    for name, make in makers.items():
        try:
            out[name] = make()
        except Exception as e:  # missing package or system library
            out[name] = f'unavailable: {type(e).__name__}: {_line(e)}'
    return out


def _line(err: BaseException) -> str:
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    return (lines[0] if lines else '')[:160]


def versions() -> Dict[str, str]:
    """Versions of the decoder packages that import."""
    out = {}
    for mod in ('decord', 'av', 'torchcodec'):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as e:
            out[mod] = f'not importable ({type(e).__name__})'
    return out


def clip_indices(videos: Sequence, sampler: dict, seed: int = 0) -> List:
    """Frame indices of one sample per video from the config's sampler
    (``SampleFrames`` config), with decord's frame count."""
    import decord
    import vivit_mm  # noqa: F401
    from mmaction.registry import TRANSFORMS
    sample = TRANSFORMS.build(dict(sampler))
    out = []
    for k, path in enumerate(videos):
        np.random.seed(seed + k)
        n = len(decord.VideoReader(str(path), num_threads=1))
        res = sample(dict(total_frames=n, start_index=0))
        out.append(np.asarray(res['frame_inds']).reshape(-1))
    return out


def frame_difference(refs: Sequence[np.ndarray],
                     outs: Sequence[np.ndarray]) -> str:
    """``'equal'``, or the max and mean absolute difference over all
    clips, or the first shape mismatch."""
    worst, total, count = 0, 0.0, 0
    for a, b in zip(refs, outs):
        if a.shape != b.shape:
            return f'shape {tuple(b.shape)} vs {tuple(a.shape)}'
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        worst, total, count = max(worst, int(d.max())), total + float(
            d.sum()), count + d.size
    if worst == 0:
        return 'equal'
    return f'max {worst}, mean {total / count:.2f}'


def compare_decoders(videos: Sequence, inds: Sequence, short_side: int,
                     repeats: int = 3, names=None) -> dict:
    """Time every available decoder on the same clips, interleaved round by
    round (so load hits all alike), and compare their frames.

    Returns:
        dict: name -> ``ms`` (median ms per clip), ``best_ms`` (the
        fastest round: least disturbed by other load), ``frames`` (comparison
        with the reference), ``error`` (why it is missing or failed).
    """
    decs = available_decoders(short_side)
    if names:
        unknown = set(names) - set(decs)
        if unknown:
            raise ValueError(f'unknown decoders {sorted(unknown)}; known: '
                             f'{sorted(decs)}')
        decs = {k: v for k, v in decs.items() if k in names}
    report: Dict[str, dict] = {}
    outputs: Dict[str, List[np.ndarray]] = {}
    for name, fn in decs.items():
        if isinstance(fn, str):
            report[name] = dict(error=fn)
            continue
        try:
            outputs[name] = [fn(v, i) for v, i in zip(videos, inds)]
        except Exception as e:
            report[name] = dict(error=f'fails: {type(e).__name__}: '
                                f'{_line(e)}')
    runnable = {n: (lambda f=decs[n]: [f(v, i) for v, i in
                                        zip(videos, inds)])
                for n in outputs}
    times = time_interleaved(runnable, iters=repeats, warmup=0)
    refs = {'decord-scaled': 'decord+Resize',
            'decord+Resize': 'decord+Resize'}
    for name, outs in outputs.items():
        ref = refs.get(name, 'decord')
        if name == ref or ref not in outputs:
            frames = 'reference' if name == ref else '-'
        else:
            frames = frame_difference(outputs[ref], outs)
        ms = 1e3 * float(np.median(times[name])) / len(videos)
        best = 1e3 * float(np.min(times[name])) / len(videos)
        report[name] = dict(ms=ms, best_ms=best, frames=frames,
                            reference=ref)
    return report


__all__ = ['available_decoders', 'compare_decoders', 'clip_indices',
           'versions', 'frame_difference']
