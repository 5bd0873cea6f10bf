"""Inference with a checkpoint a tools/train.py run saved:
``mmaction.apis.init_recognizer``/``inference_recognizer`` and
demo/demo.py."""
from importlib.machinery import SourceFileLoader

import pytest
import torch
from mmaction.apis import inference_recognizer, init_recognizer
from mmengine.dataset import Compose

from tests.conftest import REPO
from tests.tools.helpers import NUM_CLASSES, VIDEOS, manual_scores
from vivit_mm.convert.io import safe_load


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
        scores = inference_recognizer(model, video).pred_scores.item
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
    probs, idx = inference_recognizer(model, video).pred_scores.item \
        .softmax(-1).topk(5)
    assert lines == [f'{r}. {names[i]} ({p:.4f})' for r, (p, i) in
                     enumerate(zip(probs.tolist(), idx.tolist()), 1)]
    with pytest.raises(ValueError, match='class names'):
        demo.read_label_map(str(label_map), 400)


def test_demo_without_a_label_map(trained, tmp_path, capsys):
    """Class indices without names; the names a config carries (converted
    checkpoints' label_names) otherwise."""
    from mmengine.config import Config
    demo = load_demo()
    cfg_path = str(trained / 'cfg.py')
    ckpt = str(trained / 'wd' / 'epoch_2.pth')
    video = str(trained / 'videos' / 'v1.mp4')
    model = init_recognizer(cfg_path, ckpt, device='cpu')
    probs, idx = inference_recognizer(model, video).pred_scores.item \
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
