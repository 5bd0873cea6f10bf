"""Videos shared by the data tests (and tests/engine/
test_skipped_videos_hook.py, which imports them): good, short and broken
mp4 files, a list file over them and the data set configs that read them.
"""
import struct

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from tests.conftest import REPO

# Data sets build their pipelines from the default scope's registry.
init_default_scope('mmaction')

#: What opens, samples and decodes a video (4 frames with stride 2).
READ = [dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1),
        dict(type='DecordDecode')]


def guard(transforms=READ):
    """``VideoReadGuard`` around ``transforms``, as the configs name it."""
    return dict(type='VideoReadGuard', transforms=list(transforms))


def read(path, pipeline=None):
    """Run ``pipeline`` (default: the guarded READ) on the video ``path``."""
    return Compose(pipeline or [guard()])(dict(
        filename=str(path), label=0, start_index=0, modality='RGB'))


def write_video(path, frames, width=40, height=32, seed=0):
    """A bright bar moving over noise (mp4v, as OpenCV writes it)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (width, height))
    for t in range(frames):
        img = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        img[:, (3 * t) % width:(3 * t) % width + 4] = 255
        writer.write(img)
    writer.release()


def faststart(data: bytes) -> bytes:
    """Move the ``moov`` index in front of ``mdat`` (fixing the chunk
    offsets), as web-optimised mp4 files are laid out."""
    atoms, order, pos = {}, [], 0
    while pos < len(data):
        size = struct.unpack('>I', data[pos:pos + 4])[0]
        name = data[pos + 4:pos + 8].decode()
        atoms[name] = data[pos:pos + size]
        order.append(name)
        pos += size
    moov = bytearray(atoms['moov'])
    at = moov.find(b'stco')
    while at != -1:
        for k in range(struct.unpack('>I', moov[at + 8:at + 12])[0]):
            o = at + 12 + 4 * k
            off = struct.unpack('>I', moov[o:o + 4])[0] + len(moov)
            moov[o:o + 4] = struct.pack('>I', off)
        at = moov.find(b'stco', at + 4)
    rest = [atoms[n] for n in order if n not in ('ftyp', 'moov')]
    return b''.join([atoms['ftyp'], bytes(moov)] + rest)


def mdat_span(data: bytes) -> tuple:
    """(start, size) of the frame data of an mp4 file: the bytes after the
    ``mdat`` header, ``size - 8`` of them."""
    start = data.find(b'mdat') + 4
    return start, struct.unpack('>I', data[start - 8:start - 4])[0]


def _zero_mdat(data: bytes) -> bytes:
    start, size = mdat_span(data)
    return data[:start] + bytes(size - 8) + data[start + size - 8:]


@pytest.fixture(scope='session')
def videos(tmp_path_factory):
    """Good, short and broken files: name -> path."""
    d = tmp_path_factory.mktemp('videos')
    out = {}
    for i in range(6):
        write_video(d / f'good{i}.mp4', 12, seed=i)
        out[f'good{i}'] = d / f'good{i}.mp4'
    write_video(d / 'short.mp4', 3, seed=9)
    good = (d / 'good0.mp4').read_bytes()
    fast = faststart(good)
    files = {
        'short': None,
        'empty': b'',
        # OpenCV writes the index (moov) last: a cut file has none.
        'truncated': good[:len(good) // 2],
        # Index first: opens, but the frames are gone.
        'truncated_faststart': fast[:len(fast) // 2],
        'garbage': np.random.default_rng(1).integers(
            0, 256, 5000, dtype=np.uint8).tobytes(),
        # Index intact, every frame's bytes zeroed.
        'damaged': _zero_mdat(good),
    }
    for name, data in files.items():
        if data is not None:
            (d / f'{name}.mp4').write_bytes(data)
        out[name] = d / f'{name}.mp4'
    out['missing'] = d / 'missing.mp4'
    zero = cv2.VideoWriter(str(d / 'no_frames.mp4'),
                           cv2.VideoWriter_fourcc(*'mp4v'), 8, (40, 32))
    zero.release()  # a container without a video stream
    out['no_frames'] = d / 'no_frames.mp4'
    return out


#: A training list with three unreadable files (indices 1, 4, 7).
TRAIN_LIST = ['good0', 'missing', 'good1', 'good2', 'empty', 'good3',
              'good4', 'truncated', 'good5', 'short']


def write_list(tmp_path, videos, names=TRAIN_LIST):
    """A video list file of ``names`` (labels 0, 1, 2, 0 ...)."""
    lines = [f'{videos[n].name} {i % 3}' for i, n in enumerate(names)]
    path = tmp_path / 'list.txt'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def dataset_cfg(ann, videos, **kw):
    """A ``VideoDataset`` over ``ann`` with the guarded READ pipeline."""
    kw.setdefault('pipeline', [guard()] + [
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')])
    return dict(type='VideoDataset', ann_file=ann,
                data_prefix=dict(video=str(videos['good0'].parent)), **kw)


def tiny_recognizer_cfg():
    """configs/vivit_m2_k400.py with a tiny Model 2 for 4 32x32 frames."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'vivit_m2_k400.py'))
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                  feedforward_channels=64), img_size=32, num_frames=4,
        patch_size=8, num_temporal_layers=1)
    cfg.model.cls_head.update(in_channels=32, num_classes=3)
    return cfg
