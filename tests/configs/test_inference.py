"""``mmaction.apis.init_recognizer``/``inference_recognizer`` with the
Kinetics-400 Model 2 config's own test pipeline."""
import torch
from mmaction.apis import inference_recognizer, init_recognizer
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.runner import save_checkpoint

from tests.tools.helpers import K400_M2, TINY, manual_scores, write_video
from vivit_mm.compat import pred_score_of


def test_inference_with_the_real_k400_test_pipeline(tmp_path):
    """vivit_m2_k400.py unchanged except for a tiny width and depth: 32
    frames with stride 2, 4 clips x 3 crops of 224, on videos of other
    sizes, a portrait one and one shorter than a clip."""
    cfg = Config.fromfile(str(K400_M2))
    cfg.model.backbone.update(arch=dict(TINY, num_layers=1),
                              num_temporal_layers=1)
    cfg.model.cls_head.in_channels = 32
    model = init_recognizer(cfg, None, device='cpu')
    ckpt = tmp_path / 'tiny.pth'
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(epoch=1)), str(ckpt))
    model = init_recognizer(cfg, str(ckpt), device='cpu')
    pipeline = Compose(cfg.test_pipeline)
    for i, (w, h, n) in enumerate([(160, 120, 70), (90, 160, 20)]):
        video = tmp_path / f'video{i}.mp4'
        write_video(video, w, h, n, seed=i)
        result = inference_recognizer(model, str(video))
        scores = pred_score_of(result)
        assert scores.shape == (400, ) and torch.isfinite(scores).all()
        if i == 1:  # portrait and shorter than the 63-frame clip span
            data = pipeline(dict(filename=str(video), label=-1,
                                 start_index=0, modality='RGB'))
            assert data['inputs'].shape == (12, 3, 32, 224, 224)
            torch.testing.assert_close(scores, manual_scores(model, data),
                                       rtol=1e-4, atol=1e-5)
