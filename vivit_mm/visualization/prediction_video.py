"""Prediction videos: every frame of a video with the top-k classes and
their probabilities drawn on it, written as ``.mp4`` or ``.gif``, and the
timeline plot of the top classes' probabilities over sliding windows.

The text is drawn by MMAction2's ``ActionVisualizer`` (its ``draw_texts``,
in the layout of its ``add_datasample``: ``Frame i of total n frames``,
then ``Prediction: idx, score (name)`` one class a line, white monospace on
a translucent black box, sized by the frame's short side). Frames are read
and drawn one chunk at a time, so a long mp4 never has to fit in memory; a
GIF keeps its (palette) frames until it is written. mp4 files are written
by OpenCV (``mp4v``), GIFs by Pillow; no moviepy is needed. Pillow merges
identical consecutive GIF frames; the frame counter that
:func:`write_prediction_video` draws keeps every frame distinct.
"""
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

#: Output formats of :class:`VideoSink`, by file extension.
OUT_FORMATS = ('.mp4', '.gif')


def out_format(path: str) -> str:
    """``'.mp4'`` or ``'.gif'``: the format ``path`` names
    (``ValueError`` for any other extension)."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in OUT_FORMATS:
        raise ValueError(f'Cannot write {path!r}: the output video must end '
                         f'in {" or ".join(OUT_FORMATS)}, got '
                         f'{ext or "no extension"!r}.')
    return ext


def open_video(path: str):
    """A ``decord.VideoReader`` of ``path``; ``ValueError`` naming the file
    and the reason if it is missing, empty or cannot be decoded."""
    import decord
    if not os.path.isfile(path):
        raise ValueError(f'Cannot read video {path!r}: no such file.')
    try:
        reader = decord.VideoReader(str(path))
    except Exception as err:  # decord raises its own DECORDError
        raise ValueError(f'Cannot read video {path!r}: '
                         f'{str(err).strip().splitlines()[0]}') from None
    if len(reader) < 1:
        raise ValueError(f'Cannot read video {path!r}: it has no frames.')
    return reader


def video_fps(reader) -> Optional[float]:
    """The reader's average frame rate, None if the file has none."""
    fps = float(reader.get_avg_fps())
    return fps if np.isfinite(fps) and fps > 0 else None


def iter_frames(reader, chunk: int = 32) -> Iterator[np.ndarray]:
    """All frames of a ``decord.VideoReader`` in order, ``[H, W, 3]`` RGB
    uint8, decoded ``chunk`` frames at a time."""
    for a in range(0, len(reader), chunk):
        batch = reader.get_batch(list(range(a, min(a + chunk,
                                                   len(reader))))).asnumpy()
        yield from batch


def prediction_lines(indices: Sequence[int], probs: Sequence[float],
                     names: Sequence[str]) -> List[str]:
    """``Prediction: idx, p (name)`` for the first class, the others
    aligned under it (``ActionVisualizer.add_datasample``'s format)."""
    prefix = 'Prediction: '
    labels = [f'{i}, {p:.2f} ({names[i]})' for i, p in zip(indices, probs)]
    return [prefix + labels[0]] + [' ' * len(prefix) + s for s in labels[1:]]


class PredictionDrawer:
    """Draws text lines on frames through an ``ActionVisualizer`` that
    writes nothing itself (no storage backends)."""

    def __init__(self) -> None:
        from mmaction.visualization import ActionVisualizer
        self.visualizer = ActionVisualizer(name='vivit_prediction_video')

    def draw(self, frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
        """``frame`` (``[H, W, 3]`` RGB uint8) with ``lines`` drawn on it,
        in ``ActionVisualizer.add_datasample``'s layout; same size."""
        scale = min(max(min(frame.shape[:2]) / 224., 0.3), 3.0)
        vis = self.visualizer
        vis.set_image(frame)
        vis.draw_texts(
            '\n'.join(lines),
            positions=np.array([scale * 5, scale * 5], dtype=np.int32),
            font_sizes=max(1, int(scale * 7)),
            font_families='monospace',
            colors='white',
            bboxes=dict(facecolor='black', alpha=0.5, boxstyle='Round'))
        return vis.get_image()


class VideoSink:
    """Writes RGB frames of one size to ``path`` (``.mp4``: OpenCV's
    ``mp4v``; ``.gif``: Pillow, looping, at the nearest 10 ms frame time).
    Use as a context manager; the file is complete on exit."""

    def __init__(self, path: str, fps: float,
                 size: Tuple[int, int]) -> None:
        self.path, self.fps, self.size = str(path), float(fps), size
        self.format = out_format(path)
        if not self.fps > 0:
            raise ValueError(f'fps must be > 0, got {fps!r}.')
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self.count = 0
        self._gif: List = []
        self._mp4 = None
        if self.format == '.mp4':
            import cv2
            self._mp4 = cv2.VideoWriter(self.path,
                                        cv2.VideoWriter_fourcc(*'mp4v'),
                                        self.fps, tuple(size))
            if not self._mp4.isOpened():
                raise ValueError(f'OpenCV cannot write {self.path!r} '
                                 '(mp4v).')

    def write(self, frame: np.ndarray) -> None:
        """Append one ``[H, W, 3]`` RGB uint8 frame of the sink's size."""
        h, w = frame.shape[:2]
        if (w, h) != tuple(self.size):
            raise ValueError(f'Frame of {w}x{h} for a {self.size[0]}x'
                             f'{self.size[1]} video.')
        if self._mp4 is not None:
            self._mp4.write(np.ascontiguousarray(frame[..., ::-1]))  # BGR
        else:
            from PIL import Image
            self._gif.append(Image.fromarray(frame).quantize(
                colors=256, method=Image.Quantize.MEDIANCUT))
        self.count += 1

    def close(self) -> None:
        if self._mp4 is not None:
            self._mp4.release()
            self._mp4 = None
        elif self._gif:
            first, *rest = self._gif
            first.save(self.path, save_all=True, append_images=rest,
                       duration=max(10, round(1000 / self.fps)), loop=0,
                       optimize=False, disposal=1)
            self._gif = []

    def __enter__(self) -> 'VideoSink':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_prediction_video(reader, out_path: str, lines_of_frame,
                           fps: float) -> int:
    """Draw ``lines_of_frame(i)`` (a list of text lines) on every frame
    ``i`` of ``reader`` and write the video to ``out_path``; returns the
    number of frames written (the input's)."""
    first = reader[0].asnumpy()
    size = (first.shape[1], first.shape[0])
    drawer = PredictionDrawer()
    total = len(reader)
    with VideoSink(out_path, fps, size) as sink:
        for i, frame in enumerate(iter_frames(reader)):
            header = [f'Frame {i} of total {total} frames']
            sink.write(drawer.draw(frame, header + list(lines_of_frame(i))))
    return sink.count


def timeline_series(probs: np.ndarray, topk: int
                    ) -> Tuple[List[int], np.ndarray]:
    """The ``topk`` classes with the highest probability in any window
    (best first) and their probabilities: ``[num_windows, topk]``."""
    probs = np.asarray(probs, dtype=np.float64)  # [num_windows, classes]
    k = min(topk, probs.shape[1])
    classes = sorted(range(probs.shape[1]),
                     key=lambda c: (-probs[:, c].max(), c))[:k]
    return classes, probs[:, classes]


def plot_timeline(path: str, times: Sequence[float], classes: Sequence[int],
                  series: np.ndarray, names: Sequence[str],
                  xlabel: str = 'time (s)') -> None:
    """A PNG of one line per class (``series[:, j]`` for ``classes[j]``)
    over ``times``, one marker per window. Needs matplotlib (the ``plot``
    extra); ``ImportError`` saying so otherwise."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError('The timeline plot needs matplotlib: pip install '
                          '"vivit_mm[plot]".') from err
    fig = Figure(figsize=(8, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for j, c in enumerate(classes):
        ax.plot(times, series[:, j], marker='o', label=f'{c}: {names[c]}')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('probability')
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper right', fontsize='small')
    fig.tight_layout()
    parent = os.path.dirname(os.path.abspath(str(path)))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(str(path))
