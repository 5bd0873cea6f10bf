"""Class probabilities of a video: of the whole video (the config's test
views), or of successive windows of a long video (sliding window).

A window is ``clip_len x frame_interval`` frames long, the span of one clip
of the config's test ``SampleFrames`` (``32 x 2 = 64`` frames for the
Kinetics configs). Windows start every ``stride`` frames; when the last
start leaves frames uncovered at the end, one more window ends at the last
frame, so every frame lies in a window. A video shorter than a window has
one window (its frame indices wrap around, as ``SampleFrames`` loops). Each
window is classified from one clip, the frames ``SampleFrames(test_mode=
True, num_clips=1)`` would sample in it (every ``frame_interval``-th frame,
starting ``(frame_interval - 1) // 2`` into the window: the clip centred
in it), with the config's spatial views of it (e.g. ``ThreeCrop``: 3 views,
averaged as the head says).
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..compat import pred_score_of
from ..utils import checks


def class_probabilities(model, result) -> torch.Tensor:
    """The ``[num_classes]`` probabilities of an ``ActionDataSample``:
    its averaged scores (MMAction2 1.1's ``pred_scores.item`` or 1.2's
    ``pred_score``), soft-maxed unless the head averaged probabilities
    (``average_clips='prob'``)."""
    scores = pred_score_of(result).float().cpu()
    if model.cfg.model.cls_head.get('average_clips') != 'prob':
        scores = scores.softmax(-1)  # averaged logits -> probabilities
    return scores


def video_probabilities(model, video: str) -> torch.Tensor:
    """``[num_classes]`` probabilities of a whole video, from the config's
    test pipeline and views (``mmaction.apis.inference_recognizer``)."""
    from mmaction.apis import inference_recognizer
    return class_probabilities(model, inference_recognizer(model, video))


def _samplers(pipeline) -> list:
    from ..datasets.video_errors import iter_transforms
    return [t for t in iter_transforms(pipeline)
            if isinstance(t, dict) and t.get('type') == 'SampleFrames']


def clip_sampling(test_pipeline) -> Tuple[int, int]:
    """``(clip_len, frame_interval)`` of the test pipeline's one
    ``SampleFrames`` (``ValueError`` otherwise)."""
    found = _samplers(test_pipeline)
    if len(found) != 1:
        raise ValueError('A sliding window needs exactly one SampleFrames '
                         'in the config\'s test_pipeline (its clip_len and '
                         f'frame_interval make the window), found '
                         f'{len(found)}.')
    return int(found[0]['clip_len']), int(found[0].get('frame_interval', 1))


def window_starts(num_frames: int, length: int, stride: int) -> List[int]:
    """First frames of the windows of ``length`` frames over ``num_frames``
    frames, every ``stride`` frames, plus one ending at the last frame if
    the stride leaves frames at the end uncovered (see the module
    docstring)."""
    num_frames = checks.positive_int(num_frames, 'num_frames')
    length = checks.positive_int(length, 'window length')
    stride = checks.positive_int(stride, 'stride')
    if num_frames <= length:
        return [0]
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] != num_frames - length:
        starts.append(num_frames - length)
    return starts


def frame_windows(num_frames: int, starts: List[int],
                  length: int) -> np.ndarray:
    """For each frame, the index of the latest window (the one starting
    last) that covers it: ``[num_frames]`` int (-1 where none does)."""
    owner = np.full(num_frames, -1, dtype=np.int64)
    for w, start in enumerate(starts):
        owner[start:start + length] = w
    return owner


def clip_frame_inds(start: int, clip_len: int, frame_interval: int,
                    num_frames: int) -> np.ndarray:
    """The frames one test-mode clip samples in the window at ``start``
    (wrapped around for videos shorter than the clip)."""
    offset = (frame_interval - 1) // 2  # SampleFrames: centred in the window
    inds = start + offset + np.arange(clip_len) * frame_interval
    return np.mod(inds, num_frames)


def window_pipeline(test_pipeline):
    """The composed test pipeline without its ``SampleFrames``: the window's
    frame indices are given instead."""
    import copy

    from mmengine.dataset import Compose

    def drop(pipeline):
        out = []
        for t in pipeline:
            if isinstance(t, dict) and t.get('type') == 'SampleFrames':
                continue
            if isinstance(t, dict) and isinstance(t.get('transforms'),
                                                  (list, tuple)):
                t = dict(t, transforms=drop(t['transforms']))
            out.append(t)
        return out

    return Compose(drop(copy.deepcopy(list(test_pipeline))))


@dataclass
class Window:
    """One classified window: frames ``start`` to ``stop - 1``."""
    index: int
    start: int
    stop: int
    frame_inds: List[int]
    probs: np.ndarray  # [num_classes]

    def as_dict(self, fps: Optional[float] = None) -> dict:
        out = dict(index=self.index, start=self.start, stop=self.stop,
                   frame_inds=self.frame_inds,
                   probs=[float(p) for p in self.probs])
        if fps:
            out.update(start_s=self.start / fps, stop_s=self.stop / fps)
        return out


def classify_windows(model, video: str, num_frames: int,
                     stride: Optional[int] = None,
                     done: Optional[Dict[int, Window]] = None,
                     on_window: Optional[Callable[[Window], None]] = None
                     ) -> List[Window]:
    """Class probabilities of the successive windows of ``video``
    (``num_frames`` frames long); ``stride`` defaults to the window length
    (windows side by side).

    ``done`` maps window indices to windows classified before (a resumed
    job): they are taken as they are. ``on_window`` is called with each
    newly classified window as soon as it is classified (to print or save
    it as it comes)."""
    from mmaction.apis import inference_recognizer
    from mmengine.registry import init_default_scope
    cfg = model.cfg
    clip_len, interval = clip_sampling(cfg.test_pipeline)
    length = clip_len * interval
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    pipeline = window_pipeline(cfg.test_pipeline)
    windows = []
    for w, start in enumerate(window_starts(num_frames, length,
                                            stride or length)):
        if done and w in done:
            windows.append(done[w])
            continue
        inds = clip_frame_inds(start, clip_len, interval, num_frames)
        data = dict(filename=str(video), label=-1, start_index=0,
                    modality='RGB', frame_inds=inds, clip_len=clip_len,
                    frame_interval=interval, num_clips=1)
        result = inference_recognizer(model, data, pipeline)
        windows.append(Window(w, start, min(start + length, num_frames),
                              inds.tolist(),
                              class_probabilities(model, result).numpy()))
        if on_window is not None:
            on_window(windows[-1])
    return windows
