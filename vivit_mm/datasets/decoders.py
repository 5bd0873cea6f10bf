"""Maintained decoders as drop-in replacements for ``DecordInit`` and
``DecordDecode`` that return the same frames: ``PyAVIndexInit`` /
``PyAVIndexDecode`` (PyAV with a packet index) and ``TorchCodecInit`` /
``TorchCodecDecode`` (torchcodec; needs FFmpeg's shared libraries on the
system, e.g. Debian's ``apt-get install ffmpeg``).

Why (measured in docs/performance.md, "Input pipeline"): decord 0.6.0 (the
configs' default, last released 2021) bundles an FFmpeg that cannot open AV1
videos (``cannot find video stream``), while PyAV's wheels bundle a current
FFmpeg (libdav1d, VP9, HEVC) and need no system library. MMAction2's own
``PyAVInit`` takes ``total_frames`` from the container header, which is 0 for
WebM/Matroska files (Something-Something v2 ships WebM), and its
``PyAVDecode`` decodes every frame from the start of the video.

These transforms instead:

* index the video's packets once (as decord does when it opens a file):
  frame ``i`` is the ``i``-th presentation timestamp, so ``total_frames``
  and frame numbers agree with decord's for any container;
* decode only from the key frame before each run of wanted frames and
  convert only wanted frames to RGB; optionally (``skip_nonref=True``) skip
  decoding non-reference frames nobody asked for (nothing depends on
  them);
* raise a clear error when a wanted frame cannot be decoded (use
  :class:`~vivit_mm.datasets.video_errors.VideoReadGuard` around them, as
  the configs do).

Use in a config::

    dict(type='VideoReadGuard', transforms=[
        dict(type='PyAVIndexInit'),
        dict(type='SampleFrames', clip_len=32, frame_interval=2),
        dict(type='PyAVIndexDecode')])

Needs ``pip install av`` (the ``pyav`` extra of vivit_mm). torchcodec
decodes the same frames about 15 % faster than decord here (measured in
docs/performance.md) but needs ``pip install torchcodec`` and a system
FFmpeg 4-8, which its wheels do not bundle.
"""
import bisect
import io
from typing import Dict, List

import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ..utils import checks
from ..utils.optional import require


def _import_av():
    require('av', purpose='PyAVIndexInit/PyAVIndexDecode (its wheels '
            'bundle FFmpeg)')
    import av
    return av


class PyAVIndexReader:
    """An open PyAV container with the frame index of its first video
    stream.

    Attributes:
        container: The ``av`` input container.
        stream: Its first video stream.
        pts (list[int]): Presentation timestamps in display order; frame
            ``i`` has ``pts[i]``.
        keyframes (list[int]): Sorted timestamps of the key frames.
        avg_fps (float): The stream's average frame rate.
    """

    def __init__(self, source, num_threads: int = 1,
                 skip_nonref: bool = False) -> None:
        av = _import_av()
        self.skip_nonref = skip_nonref
        self.container = av.open(source)
        if not self.container.streams.video:
            self.close()
            raise ValueError('no video stream in the file')
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        ctx.thread_count = num_threads
        # Slice threads only: with frame threads the per-packet skip
        # decision of decode() would apply to the wrong frames.
        ctx.thread_type = 'SLICE'
        pts, keys = [], []
        for packet in self.container.demux(self.stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size == 0 or stamp is None:
                continue
            pts.append(stamp)
            if packet.is_keyframe:
                keys.append(stamp)
        self.pts = sorted(pts)
        self.keyframes = sorted(keys) or self.pts[:1]
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.avg_fps = float(rate) if rate else 0.0

    def __len__(self) -> int:
        return len(self.pts)

    def _keyframe_before(self, stamp: int) -> int:
        k = bisect.bisect_right(self.keyframes, stamp) - 1
        return self.keyframes[max(k, 0)]

    def _runs(self, wanted: List[int]) -> List[List[int]]:
        """Wanted timestamps (sorted) grouped into runs that are decoded
        from one seek: a new run starts where a key frame lies beyond the
        previous wanted frame, so seeking skips decoding."""
        runs = [[wanted[0]]]
        for stamp in wanted[1:]:
            if self._keyframe_before(stamp) > runs[-1][-1]:
                runs.append([stamp])
            else:
                runs[-1].append(stamp)
        return runs

    def get_frames(self, frame_inds) -> List[np.ndarray]:
        """RGB frames (``H x W x 3`` uint8) at the given frame indices, in
        their order (repeats allowed)."""
        inds = [int(i) for i in np.asarray(frame_inds).reshape(-1)]
        bad = [i for i in inds if not 0 <= i < len(self.pts)]
        if bad:
            raise IndexError(f'frame indices {bad[:5]} are outside the '
                             f'video\'s {len(self.pts)} frames')
        wanted = sorted({self.pts[i] for i in inds})
        frames: Dict[int, np.ndarray] = {}
        ctx = self.stream.codec_context
        for run in self._runs(wanted):
            self._decode_run(run, frames, ctx)
        missing = [i for i in inds if self.pts[i] not in frames]
        if missing:
            raise RuntimeError(f'frames {sorted(set(missing))[:5]} could not '
                               'be decoded')
        return [frames[self.pts[i]] for i in inds]

    def _decode_run(self, run, frames, ctx) -> None:
        want, last = set(run), run[-1]
        self.container.seek(self._keyframe_before(run[0]), stream=self.stream,
                            backward=True, any_frame=False)
        try:
            for packet in self.container.demux(self.stream):
                stamp = packet.pts
                # A non-reference frame nobody asked for is never decoded.
                if self.skip_nonref:
                    ctx.skip_frame = ('DEFAULT' if stamp is None
                                      or stamp in want or packet.size == 0
                                      else 'NONREF')
                for frame in packet.decode():
                    if frame.pts in want and frame.pts not in frames:
                        frames[frame.pts] = frame.to_ndarray(format='rgb24')
                if (stamp is not None and stamp >= last
                        and want.issubset(frames)):
                    break
        finally:
            ctx.skip_frame = 'DEFAULT'

    def close(self) -> None:
        self.container.close()


@TRANSFORMS.register_module()
class PyAVIndexInit(BaseTransform):
    """Open a video with PyAV and index its frames (``DecordInit``'s
    contract).

    Required keys: ``filename``. Added keys: ``video_reader`` (a
    :class:`PyAVIndexReader`), ``total_frames``, ``avg_fps``.

    Args:
        io_backend (str): mmengine file backend. Defaults to ``'disk'``.
        num_threads (int): Decoder threads. Defaults to 1 (one per data
            loader worker, as ``DecordInit``).
        skip_nonref (bool): Skip decoding non-reference frames that were
            not sampled (the frames are the same; on H.264 with B-frames it
            halves the frames decoded, but the benchmark did not show a
            clear time win, see docs/performance.md). Defaults to False.
        **kwargs: Arguments of the file client.
    """

    def __init__(self, io_backend: str = 'disk', num_threads: int = 1,
                 skip_nonref: bool = False, **kwargs) -> None:
        self.io_backend = io_backend
        self.skip_nonref = bool(skip_nonref)
        self.num_threads = checks.positive_int(num_threads, 'num_threads',
                                               'PyAVIndexInit')
        self.kwargs = kwargs
        self.file_client = None

    def transform(self, results: dict) -> dict:
        from mmengine.fileio import FileClient
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend, **self.kwargs)
        data = io.BytesIO(self.file_client.get(results['filename']))
        reader = PyAVIndexReader(data, num_threads=self.num_threads,
                                 skip_nonref=self.skip_nonref)
        results['video_reader'] = reader
        results['total_frames'] = len(reader)
        results['avg_fps'] = reader.avg_fps
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(io_backend={self.io_backend}, '
                f'num_threads={self.num_threads}, '
                f'skip_nonref={self.skip_nonref})')


@TRANSFORMS.register_module()
class PyAVIndexDecode(BaseTransform):
    """Decode the sampled frames of a :class:`PyAVIndexInit` reader
    (``DecordDecode``'s contract, same frames).

    Required keys: ``video_reader``, ``frame_inds``. Added keys: ``imgs``,
    ``original_shape``, ``img_shape``; ``video_reader`` is closed and set
    to None.
    """

    def transform(self, results: dict) -> dict:
        reader = results['video_reader']
        if not isinstance(reader, PyAVIndexReader):
            raise TypeError('PyAVIndexDecode needs PyAVIndexInit before it, '
                            f'got a video_reader of type '
                            f'{type(reader).__name__}')
        if results['frame_inds'].ndim != 1:
            results['frame_inds'] = np.squeeze(results['frame_inds'])
        try:
            imgs = reader.get_frames(results['frame_inds'])
        finally:
            reader.close()
            results['video_reader'] = None
        results['imgs'] = imgs
        results['original_shape'] = imgs[0].shape[:2]
        results['img_shape'] = imgs[0].shape[:2]
        return results


def _torchcodec_decoder():
    require('torchcodec', purpose='TorchCodecInit')
    from torchcodec.decoders import VideoDecoder
    return VideoDecoder


@TRANSFORMS.register_module()
class TorchCodecInit(BaseTransform):
    """Open a video with torchcodec (``DecordInit``'s contract).

    Exact seek mode (the file is scanned once, so frame ``i`` is decord's
    frame ``i``), one FFmpeg thread per worker. Required keys:
    ``filename``. Added keys: ``video_reader``, ``total_frames``,
    ``avg_fps``.

    Args:
        io_backend (str): mmengine file backend. Defaults to ``'disk'``.
        num_threads (int): FFmpeg threads. Defaults to 1.
        **kwargs: Arguments of the file client.
    """

    def __init__(self, io_backend: str = 'disk', num_threads: int = 1,
                 **kwargs) -> None:
        self.io_backend = io_backend
        self.num_threads = checks.positive_int(num_threads, 'num_threads',
                                               'TorchCodecInit')
        self.kwargs = kwargs
        self.file_client = None

    def transform(self, results: dict) -> dict:
        from mmengine.fileio import FileClient
        decoder_cls = _torchcodec_decoder()
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend, **self.kwargs)
        data = self.file_client.get(results['filename'])
        try:
            decoder = decoder_cls(data, seek_mode='exact',
                                  dimension_order='NHWC',
                                  num_ffmpeg_threads=self.num_threads)
        except (OSError, RuntimeError) as e:
            if 'libtorchcodec' not in str(e):
                raise  # a bad file: VideoReadGuard names it
            # libtorchcodec_core*.so found no FFmpeg on the system.
            raise OSError('torchcodec could not load FFmpeg 4-8 shared '
                          'libraries; install them (e.g. apt-get install '
                          'ffmpeg) or use DecordInit/PyAVIndexInit') from e
        results['video_reader'] = decoder
        results['total_frames'] = int(decoder.metadata.num_frames)
        results['avg_fps'] = float(decoder.metadata.average_fps or 0.0)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(io_backend={self.io_backend}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class TorchCodecDecode(BaseTransform):
    """Decode the sampled frames of a :class:`TorchCodecInit` decoder
    (``DecordDecode``'s contract, same frames)."""

    def transform(self, results: dict) -> dict:
        decoder = results['video_reader']
        if not hasattr(decoder, 'get_frames_at'):
            raise TypeError('TorchCodecDecode needs TorchCodecInit before '
                            'it, got a video_reader of type '
                            f'{type(decoder).__name__}')
        if results['frame_inds'].ndim != 1:
            results['frame_inds'] = np.squeeze(results['frame_inds'])
        inds = [int(i) for i in results['frame_inds']]
        batch = decoder.get_frames_at(inds).data.numpy()
        results['video_reader'] = None
        imgs = list(batch)
        results['imgs'] = imgs
        results['original_shape'] = imgs[0].shape[:2]
        results['img_shape'] = imgs[0].shape[:2]
        return results


__all__ = ['PyAVIndexReader', 'PyAVIndexInit', 'PyAVIndexDecode',
           'TorchCodecInit', 'TorchCodecDecode']
