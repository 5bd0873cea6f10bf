"""Inference with a checkpoint a tools/train.py run saved:
``mmaction.apis.init_recognizer``/``inference_recognizer`` and
demo/demo.py (top-k, prediction videos, sliding windows)."""
import copy
import json
from importlib.machinery import SourceFileLoader

import pytest
import torch
from mmaction.apis import inference_recognizer, init_recognizer
from mmengine.dataset import Compose

from tests.conftest import REPO
from tests.tools.helpers import (NUM_CLASSES, VIDEOS, manual_scores,
                                 write_video)
from vivit_mm.compat import pred_score_of
from vivit_mm.convert.io import safe_load
from vivit_mm.deploy.loading import read_label_map
from vivit_mm.datasets.video_errors import iter_transforms


def load_demo():
    return SourceFileLoader('vivit_demo',
                            str(REPO / 'demo' / 'demo.py')).load_module()


def test_init_recognizer_inference_and_demo(trained, capsys):
    cfg_path = str(trained / 'cfg.py')
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    model = init_recognizer(cfg_path, ckpt, device='cpu')
    state = safe_load(ckpt)['state_dict']
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])
    pipeline = Compose(model.cfg.test_pipeline)
    for i in range(len(VIDEOS)):  # landscape, portrait, too short
        video = str(trained / 'videos' / f'v{i}.mp4')
        scores = pred_score_of(inference_recognizer(model, video))
        data = pipeline(dict(filename=video, label=-1, start_index=0,
                             modality='RGB'))
        assert data['inputs'].shape == (12, 3, 4, 32, 32)  # 4 clips x 3
        torch.testing.assert_close(scores, manual_scores(model, data),
                                   rtol=1e-5, atol=1e-5)

    demo = load_demo()
    names = [f'class_{c}' for c in range(NUM_CLASSES)]
    label_map = trained / 'labels.txt'
    label_map.write_text('\n'.join(names) + '\n')
    video = str(trained / 'videos' / 'v1.mp4')
    demo.main([video, cfg_path, ckpt, '--label-map', str(label_map),
               '--device', 'cpu'])
    lines = capsys.readouterr().out.strip().splitlines()[-5:]
    probs, idx = pred_score_of(inference_recognizer(model, video)) \
        .softmax(-1).topk(5)
    assert lines == [f'{r}. {names[i]} ({p:.4f})' for r, (p, i) in
                     enumerate(zip(probs.tolist(), idx.tolist()), 1)]
    with pytest.raises(ValueError, match='class names'):
        read_label_map(str(label_map), 400)


def test_demo_without_a_label_map(trained, tmp_path, capsys):
    """Class indices without names; the names a config carries (converted
    checkpoints' label_names) otherwise."""
    from mmengine.config import Config
    demo = load_demo()
    cfg_path = str(trained / 'cfg.py')
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    video = str(trained / 'videos' / 'v1.mp4')
    model = init_recognizer(cfg_path, ckpt, device='cpu')
    probs, idx = pred_score_of(inference_recognizer(model, video)) \
        .softmax(-1).topk(3)
    demo.main([video, cfg_path, ckpt, '--topk', '3', '--device', 'cpu'])
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    assert lines == [f'{r}. {i} ({p:.4f})' for r, (p, i) in
                     enumerate(zip(probs.tolist(), idx.tolist()), 1)]
    cfg = Config.fromfile(cfg_path)
    cfg.label_names = [f'name{c}' for c in range(NUM_CLASSES)]
    named = tmp_path / 'named.py'
    cfg.dump(str(named))
    demo.main([video, str(named), ckpt, '--topk', '3', '--device', 'cpu'])
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    assert lines == [f'{r}. name{i} ({p:.4f})' for r, (p, i) in
                     enumerate(zip(probs.tolist(), idx.tolist()), 1)]


def _tool_args(trained):
    return str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')


@pytest.mark.parametrize('ext', ['.mp4', '.gif'])
def test_demo_writes_the_prediction_video(trained, tmp_path, ext):
    """Every frame of the input, at its size, with the whole video's top-k
    drawn; the JSON holds the probabilities inference_recognizer gives."""
    import decord
    from PIL import Image
    cfg_path, ckpt = _tool_args(trained)
    video = str(trained / 'videos' / 'v4.mp4')  # 80x64, 10 frames
    out = tmp_path / f'pred{ext}'
    result = load_demo().main([video, cfg_path, ckpt, '--device', 'cpu',
                               '--out-filename', str(out), '--topk', '3',
                               '--out-json', str(tmp_path / 'p.json')])
    w, h, n = VIDEOS[4][:3]
    if ext == '.mp4':
        back = decord.VideoReader(str(out))
        assert (len(back), back[0].shape) == (n, (h, w, 3))
    else:
        gif = Image.open(out)
        assert (gif.n_frames, gif.size) == (n, (w, h))
    model = init_recognizer(cfg_path, ckpt, device='cpu')
    probs = pred_score_of(inference_recognizer(model, video)).softmax(-1)
    torch.testing.assert_close(torch.tensor(result['probs']), probs,
                               rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / 'p.json').read_text()) == result


def test_demo_sliding_window_timeline(trained, tmp_path):
    """One point per window in the timeline; each frame annotated; the
    windows as vivit_mm.deploy.prediction computes them."""
    import cv2
    import decord
    from vivit_mm.deploy.prediction import window_starts
    cfg_path, ckpt = _tool_args(trained)
    video = str(trained / 'videos' / 'v3.mp4')  # 40x56, 14 frames
    out = tmp_path / 'slide.mp4'
    result = load_demo().main([
        video, cfg_path, ckpt, '--device', 'cpu', '--sliding-window',
        '--stride', '3', '--out-filename', str(out), '--topk', '2',
        '--out-json', str(tmp_path / 's.json')])
    starts = window_starts(14, 4 * 2, 3)  # the tiny config: 4 frames x 2
    assert starts == [0, 3, 6]
    assert [w['start'] for w in result['windows']] == starts
    assert result['window_length'] == 8 and result['stride'] == 3
    timeline = result['timeline']
    assert len(timeline['x']) == len(timeline['probs']) == len(starts)
    assert timeline['x'] == pytest.approx([(s + s + 8) / 2 / 8
                                           for s in starts])  # 8 fps
    assert len(timeline['classes']) == 2
    assert timeline['png'] == str(tmp_path / 'slide_timeline.png')
    assert cv2.imread(timeline['png']) is not None
    back = decord.VideoReader(str(out))
    assert (len(back), back[0].shape) == (14, (56, 40, 3))
    assert json.loads((tmp_path / 's.json').read_text()) == result


def test_sliding_window_probabilities_are_one_test_clip(trained, tmp_path):
    """A video of exactly one window: its probabilities are those of the
    config's test pipeline with one clip (SampleFrames num_clips=1)."""
    from vivit_mm.deploy.prediction import classify_windows
    cfg_path, ckpt = _tool_args(trained)
    video = tmp_path / 'eight.mp4'
    write_video(video, 64, 48, 8, seed=5)
    model = init_recognizer(cfg_path, ckpt, device='cpu')
    (window, ) = classify_windows(model, str(video), 8)
    assert (window.start, window.stop) == (0, 8)
    cfg = copy.deepcopy(model.cfg.test_pipeline)
    [t for t in iter_transforms(cfg) if t['type'] == 'SampleFrames'][0] \
        .num_clips = 1
    ref = inference_recognizer(model, str(video), Compose(cfg))
    torch.testing.assert_close(torch.from_numpy(window.probs),
                               pred_score_of(ref).softmax(-1),
                               rtol=1e-5, atol=1e-6)


def test_demo_bad_inputs_fail_clearly(trained, tmp_path):
    cfg_path, ckpt = _tool_args(trained)
    demo = load_demo()
    video = str(trained / 'videos' / 'v0.mp4')
    with pytest.raises(SystemExit, match=r"must end in .mp4 or .gif, got "
                       r"'.avi'"):
        demo.main([video, cfg_path, ckpt, '--out-filename',
                   str(tmp_path / 'x.avi')])
    junk = tmp_path / 'junk.mp4'
    junk.write_bytes(b'\0' * 1000)
    with pytest.raises(SystemExit, match="Cannot read video '.*junk.mp4'"):
        demo.main([str(junk), cfg_path, ckpt])
    for argv in (['--sliding-window'], ['--stride', '4'],
                 ['--sliding-window', '--timeline', 't.jpg'],
                 ['--fps', '0']):
        with pytest.raises(SystemExit) as err:
            demo.parse_args([video, cfg_path, ckpt] + argv)
        assert err.value.code == 2
