"""PyAVIndexInit/PyAVIndexDecode and TorchCodecInit/TorchCodecDecode give
MMAction2's DecordInit/DecordDecode frames, bit for bit, on the same videos
and sampled indices (H.264 with B-frames and several key frames, VP9 WebM,
mp4v), and fail clearly. torchcodec's tests skip where it or the system
FFmpeg it needs is missing."""
import numpy as np
import pytest
from mmaction.registry import TRANSFORMS
from mmengine.dataset import Compose

from tests.datasets.conftest import guard, write_video as write_mp4v
from vivit_mm.datasets.video_errors import VideoReadError

av = pytest.importorskip('av')
videos = pytest.importorskip('vivit_bench.videos')

# Tiny, but encoded like real data: B-frames, key frame every 8 frames.
H264 = videos.VideoSpec(64, 48, 12, 3, 'libx264', gop=8, seed=1)
VP9 = videos.VideoSpec(64, 48, 12, 2, 'libvpx-vp9', gop=10, seed=2)

SAMPLERS = [
    dict(clip_len=8, frame_interval=2, num_clips=1),                 # train
    dict(clip_len=8, frame_interval=2, num_clips=3, test_mode=True),  # test
    dict(clip_len=32, frame_interval=2, num_clips=1, test_mode=True),  # loop
]


def torchcodec_missing():
    """Why torchcodec cannot decode here, or None."""
    try:
        from torchcodec.decoders import VideoDecoder
        VideoDecoder(videos.write_video(
            __import__('tempfile').mkdtemp() + '/p.mp4',
            videos.VideoSpec(32, 32, 12, 0.5, gop=6)))
    except ImportError:
        return 'torchcodec is not installed'
    except (OSError, RuntimeError) as e:
        return f'torchcodec cannot load FFmpeg: {str(e)[:80]}'
    return None


DECODERS = [('PyAVIndexInit', 'PyAVIndexDecode', {}),
            ('PyAVIndexInit', 'PyAVIndexDecode', dict(skip_nonref=True)),
            pytest.param('TorchCodecInit', 'TorchCodecDecode', {},
                          marks=pytest.mark.skipif(
                              bool(torchcodec_missing()),
                              reason=str(torchcodec_missing())))]


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp('decoders')
    out = {'h264': videos.write_video(root / ('a' + H264.suffix), H264),
           'vp9': videos.write_video(root / ('b' + VP9.suffix), VP9)}
    write_mp4v(root / 'c.mp4', 20, seed=3)
    out['mp4v'] = root / 'c.mp4'
    return out


def run(init, decode, path, sampler, seed, **init_args):
    np.random.seed(seed)
    pipe = Compose([guard([dict(type=init, **init_args),
                           dict(type='SampleFrames', **sampler),
                           dict(type=decode)])])
    return pipe(dict(filename=str(path), label=0, start_index=0,
                     modality='RGB'))


@pytest.mark.parametrize('init, decode, args', DECODERS)
@pytest.mark.parametrize('kind', ['h264', 'vp9', 'mp4v'])
@pytest.mark.parametrize('sampler', SAMPLERS)
def test_same_frames_as_decord(clips, kind, sampler, init, decode, args):
    for seed in range(2):
        ref = run('DecordInit', 'DecordDecode', clips[kind], sampler, seed)
        got = run(init, decode, clips[kind], sampler, seed, **args)
        assert got['total_frames'] == ref['total_frames']
        assert got['avg_fps'] == pytest.approx(ref['avg_fps'], rel=1e-3)
        np.testing.assert_array_equal(got['frame_inds'], ref['frame_inds'])
        assert got['img_shape'] == ref['img_shape']
        assert got['original_shape'] == ref['original_shape']
        assert got['video_reader'] is None
        np.testing.assert_array_equal(np.stack(got['imgs']),
                                      np.stack(ref['imgs']))


def test_any_order_and_repeats_and_skipping_changes_nothing(clips):
    import decord
    from vivit_mm.datasets.decoders import PyAVIndexReader
    path = str(clips['h264'])
    n = int(H264.fps * H264.seconds)
    inds = [n - 1, 3, 3, 20, 0, 9, 30, 17]
    ref = decord.VideoReader(path, num_threads=1).get_batch(inds).asnumpy()
    for skip in (True, False):
        reader = PyAVIndexReader(path, skip_nonref=skip)
        assert len(reader) == n
        assert len(reader.keyframes) >= 3
        np.testing.assert_array_equal(np.stack(reader.get_frames(inds)), ref)
        reader.close()


def test_registered_and_repr():
    init = TRANSFORMS.build(dict(type='PyAVIndexInit', skip_nonref=False))
    assert 'skip_nonref=False' in repr(init)
    assert TRANSFORMS.get('PyAVIndexDecode') is not None
    assert 'num_threads=2' in repr(
        TRANSFORMS.build(dict(type='TorchCodecInit', num_threads=2)))
    with pytest.raises(ValueError, match='num_threads'):
        TRANSFORMS.build(dict(type='PyAVIndexInit', num_threads=0))


def test_clear_errors(clips, tmp_path):
    from vivit_mm.datasets.decoders import PyAVIndexReader
    reader = PyAVIndexReader(str(clips['vp9']))
    with pytest.raises(IndexError, match='outside the video'):
        reader.get_frames([0, 10**6])
    reader.close()
    decode = TRANSFORMS.build(dict(type='PyAVIndexDecode'))
    with pytest.raises(TypeError, match='needs PyAVIndexInit'):
        decode(dict(video_reader=object(), frame_inds=np.arange(2)))
    decode = TRANSFORMS.build(dict(type='TorchCodecDecode'))
    with pytest.raises(TypeError, match='needs TorchCodecInit'):
        decode(dict(video_reader=object(), frame_inds=np.arange(2)))
    broken = tmp_path / 'broken.mp4'
    broken.write_bytes(b'\x00' * 300)
    with pytest.raises(VideoReadError, match='broken.mp4'):
        run('PyAVIndexInit', 'PyAVIndexDecode', broken, SAMPLERS[0], 0)


def test_reads_av1_which_decord_cannot(tmp_path):
    try:
        av.codec.Codec('libsvtav1', 'w')
    except Exception:
        pytest.skip('this PyAV build has no AV1 encoder')
    spec = videos.VideoSpec(64, 64, 12, 1, 'libsvtav1', gop=12)
    path = videos.write_video(tmp_path / 'av1.mkv', spec)
    got = run('PyAVIndexInit', 'PyAVIndexDecode', path, SAMPLERS[0], 0)
    assert got['total_frames'] == 12
    assert np.stack(got['imgs']).shape == (8, 64, 64, 3)
    # decord 0.6.0 (the configs' default) cannot open it: the reason the
    # PyAV transforms exist (docs/performance.md, Input pipeline).
    with pytest.raises(VideoReadError):
        run('DecordInit', 'DecordDecode', path, SAMPLERS[0], 0)
