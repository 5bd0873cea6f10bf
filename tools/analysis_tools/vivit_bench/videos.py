"""Videos for the input-pipeline benchmark (:mod:`.pipeline`): real-sized
files encoded like the data sets, so decoders work as on real footage.

* Kinetics-like (:data:`KINETICS`): H.264 (libx264, ``yuv420p``, CRF 23,
  preset ``veryfast``, 3 B-frames), 10 s, short side 256-320, 25-30 fps,
  key frame interval 250 frames (libx264's default ``keyint``, what
  re-encoding a trimmed YouTube clip with ``ffmpeg -c:v libx264`` gives).
* Something-Something-v2-like (:data:`SSV2`): VP9 WebM, height 240,
  12 fps, 4 s (the released SSv2 videos), key frame every 120 frames.

Content: a moving colour texture with fixed fine detail, a little noise
per frame and a moving block (real-ish: the codec spends about 0.5 Mbit/s
at 340x256, does motion search and picks B-frames for most frames). Encoded with
PyAV, whose wheels bundle FFmpeg with libx264 and libvpx; files are cached
by their parameters in a folder (``data/`` is git-ignored).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

#: Version of the generated content (part of the cached file names).
CONTENT = 2
VIDEO_EXTENSIONS = ('.mp4', '.webm', '.mkv', '.avi', '.mov')


@dataclass(frozen=True)
class VideoSpec:
    """What one generated video looks like."""

    width: int
    height: int
    fps: int
    seconds: float
    codec: str = 'libx264'
    gop: int = 250
    seed: int = 0

    @property
    def suffix(self) -> str:
        if 'vp' in self.codec:
            return '.webm'
        return '.mp4' if self.codec == 'libx264' else '.mkv'

    @property
    def name(self) -> str:
        return (f'{self.codec}_{self.width}x{self.height}_{self.fps}fps_'
                f'{self.seconds:g}s_gop{self.gop}_s{self.seed}_c{CONTENT}'
                f'{self.suffix}')


KINETICS = (VideoSpec(340, 256, 30, 10, seed=0),
            VideoSpec(456, 256, 25, 10, seed=1),
            VideoSpec(384, 288, 30, 10, seed=2),
            VideoSpec(480, 320, 25, 10, seed=3),
            VideoSpec(288, 384, 30, 10, seed=4),   # portrait
            VideoSpec(426, 320, 30, 10, seed=5))
SSV2 = (VideoSpec(427, 240, 12, 4, 'libvpx-vp9', 120, seed=0),
        VideoSpec(320, 240, 12, 4, 'libvpx-vp9', 120, seed=1),
        VideoSpec(360, 240, 12, 3, 'libvpx-vp9', 120, seed=2),
        VideoSpec(427, 240, 12, 5, 'libvpx-vp9', 120, seed=3))
KINDS = {'kinetics': KINETICS, 'ssv2': SSV2}


def frames(spec: VideoSpec):
    """The RGB frames (``H x W x 3`` uint8) of a spec, one at a time."""
    rng = np.random.default_rng(spec.seed)
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Fixed fine detail plus a little sensor noise per frame: x264 then
    # picks B-frames for most frames and about 0.5 Mbit/s at 340x256, as
    # on Kinetics clips (all-new noise every frame would make it P-only).
    grain = rng.normal(0, 10, (h, w, 3)).astype(np.float32)
    side = max(8, min(h, w) // 8)
    for t in range(int(round(spec.fps * spec.seconds))):
        ph = t / spec.fps + spec.seed
        img = np.empty((h, w, 3), np.float32)
        for ch in range(3):
            img[..., ch] = (127 + 60 * np.sin(0.05 * (xx + 40 * ph * (ch + 1))
                                              + 0.03 * yy)
                            + 40 * np.cos(0.02 * yy - 2 * ph))
        img += grain + rng.normal(0, 2, (h, w, 1)).astype(np.float32)
        cx = int(w / 2 + w / 3 * np.sin(ph))
        cy = int(h / 2 + h / 4 * np.cos(1.3 * ph))
        img[max(cy - side, 0):cy + side, max(cx - side, 0):cx + side] = (
            230, 40, 40)
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_video(path, spec: VideoSpec) -> Path:
    """Encode ``spec`` to ``path`` with PyAV (needs ``pip install av``)."""
    try:
        import av
    except ImportError as e:
        raise ImportError('Generating benchmark videos needs PyAV (pip '
                          'install av; its wheels bundle FFmpeg with libx264 '
                          'and libvpx), or pass --videos DIR.') from e
    path = Path(path)
    tmp = path.with_name(path.stem + '.part' + path.suffix)
    with av.open(str(tmp), 'w') as out:
        stream = out.add_stream(spec.codec, rate=spec.fps)
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = 'yuv420p'
        stream.codec_context.gop_size = spec.gop
        if spec.codec == 'libx264':
            stream.options = {'preset': 'veryfast', 'crf': '23',
                              'bframes': '3'}
        elif 'vp' in spec.codec:
            stream.options = {'crf': '32', 'b': '0', 'deadline': 'realtime',
                              'cpu-used': '8'}
        for img in frames(spec):
            frame = av.VideoFrame.from_ndarray(img, format='rgb24')
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def generated_videos(cache_dir, kind: str = 'kinetics',
                     num_videos: int = 4) -> List[Path]:
    """Generate (or reuse from ``cache_dir``) ``num_videos`` videos of a
    kind (``'kinetics'`` or ``'ssv2'``)."""
    if kind not in KINDS:
        raise ValueError(f'unknown video kind {kind!r}; one of '
                         f'{sorted(KINDS)}')
    specs = KINDS[kind]
    if not 1 <= num_videos <= len(specs):
        raise ValueError(f'--num-videos must be 1..{len(specs)} for {kind}, '
                         f'got {num_videos}')
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs[:num_videos]:
        path = cache / spec.name
        if not path.is_file():
            write_video(path, spec)
        paths.append(path)
    return paths


def list_videos(folder) -> List[Path]:
    """The video files directly in ``folder`` (sorted), with clear errors
    for a missing or empty folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'--videos: no such folder: {folder}')
    found = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if not found:
        raise FileNotFoundError(
            f'--videos: no video files ({", ".join(VIDEO_EXTENSIONS)}) in '
            f'{folder}')
    return found


#: OpenCV FourCC codes -> FFmpeg codec names.
FOURCC_NAMES = {'avc1': 'h264', 'vp90': 'vp9', 'vp09': 'vp9', 'vp80': 'vp8',
                'mp4v': 'mpeg4', 'fmp4': 'mpeg4', 'hev1': 'hevc',
                'hvc1': 'hevc', 'av01': 'av1'}


def describe(paths: Sequence[Path]) -> List[dict]:
    """Size, frame rate, duration and codec (FourCC) of each video, read
    with OpenCV (the base install: no PyAV needed)."""
    import cv2
    rows = []
    for p in paths:
        cap = cv2.VideoCapture(str(p))
        try:
            if not cap.isOpened():
                raise ValueError(f'--videos: cannot open {p}')
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
            frames = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            code = int(cap.get(cv2.CAP_PROP_FOURCC))
            codec = ''.join(chr((code >> 8 * i) & 0xFF)
                            for i in range(4)).strip('\x00 ').lower()
            codec = FOURCC_NAMES.get(codec, codec or '?')
            rows.append(dict(
                name=p.name, width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), fps=fps,
                codec=codec, seconds=frames / fps if fps else 0.0))
        finally:
            cap.release()
    return rows


__all__ = ['VideoSpec', 'KINETICS', 'SSV2', 'KINDS', 'write_video',
           'generated_videos', 'list_videos', 'describe', 'frames']
