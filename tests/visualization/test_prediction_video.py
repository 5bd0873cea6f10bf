"""vivit_mm.visualization.prediction_video: output formats, readable and
unreadable videos, mp4/GIF round trips (frame count and size), the drawn
text and the timeline plot."""
import cv2
import decord
import numpy as np
import pytest
from PIL import Image

from tests.datasets.conftest import write_video
from vivit_mm.visualization import prediction_video as pv


def test_out_format():
    assert pv.out_format('a/b.MP4') == '.mp4'
    assert pv.out_format('b.gif') == '.gif'
    for bad, what in (('b.avi', "'.avi'"), ('b', "'no extension'")):
        with pytest.raises(ValueError, match=f'.mp4 or .gif, got {what}'):
            pv.out_format(bad)


def test_open_video_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match='no such file'):
        pv.open_video(str(tmp_path / 'missing.mp4'))
    junk = tmp_path / 'junk.mp4'
    junk.write_bytes(b'not a video' * 100)
    with pytest.raises(ValueError, match=r"Cannot read video '.*junk.mp4'"):
        pv.open_video(str(junk))
    good = tmp_path / 'good.mp4'
    write_video(good, 5, 40, 56)
    reader = pv.open_video(str(good))
    assert len(reader) == 5 and pv.video_fps(reader) == pytest.approx(8)
    frames = list(pv.iter_frames(reader, chunk=2))
    assert len(frames) == 5 and frames[0].shape == (56, 40, 3)


@pytest.mark.parametrize('ext', ['.mp4', '.gif'])
def test_prediction_video_keeps_frame_count_and_size(tmp_path, ext):
    src = tmp_path / 'in.mp4'
    write_video(src, 11, 64, 48)
    out = tmp_path / 'sub' / f'out{ext}'
    seen = []

    def lines(i):
        seen.append(i)
        return pv.prediction_lines([2, 0], [0.7, 0.2], ['a', 'b', 'c'])

    n = pv.write_prediction_video(pv.open_video(str(src)), str(out), lines,
                                  fps=8)
    assert n == 11 and seen == list(range(11))
    if ext == '.mp4':
        back = decord.VideoReader(str(out))
        assert len(back) == 11 and back[0].shape == (48, 64, 3)
    else:
        gif = Image.open(out)
        assert gif.n_frames == 11 and gif.size == (64, 48)
        assert gif.info['duration'] == 120  # 1000 / 8 at 10 ms steps
    # The text is drawn: the annotated frame differs from the input.
    first_in = decord.VideoReader(str(src))[0].asnumpy()
    first_out = (decord.VideoReader(str(out))[0].asnumpy() if ext == '.mp4'
                 else np.asarray(Image.open(out).convert('RGB')))
    assert np.abs(first_out.astype(int) - first_in).mean() > 1


def test_sink_checks_size_and_fps(tmp_path):
    with pytest.raises(ValueError, match='fps must be > 0'):
        pv.VideoSink(str(tmp_path / 'a.mp4'), 0, (8, 8))
    with pv.VideoSink(str(tmp_path / 'a.gif'), 4, (8, 6)) as sink:
        with pytest.raises(ValueError, match='Frame of 6x8 for a 8x6'):
            sink.write(np.zeros((8, 6, 3), np.uint8))


def test_prediction_lines_follow_action_visualizer():
    assert pv.prediction_lines([3, 1], [0.456, 0.2], ['w', 'x', 'y', 'z']) \
        == ['Prediction: 3, 0.46 (z)', '            1, 0.20 (x)']


def test_timeline_series_and_plot(tmp_path):
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    classes, series = pv.timeline_series(probs, topk=2)
    assert classes == [1, 2]  # best peak first; 0 peaks lowest
    np.testing.assert_array_equal(series, probs[:, [1, 2]])
    assert pv.timeline_series(probs, topk=9)[0] == [1, 2, 0]
    png = tmp_path / 'plots' / 'timeline.png'
    pv.plot_timeline(str(png), [0.5, 1.5, 2.5], classes, series,
                     ['a', 'b', 'c'])
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (350, 800, 3)
