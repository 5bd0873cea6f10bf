"""The configs run with MMAction2's own tools: its ``tools/train.py`` and
``tools/test.py`` (shipped as ``mmaction/.mim/tools`` in the PyPI package,
``tools/`` beside ``mmaction/`` in a source install) and its
``MMAction2Inferencer``, on the installed MMAction2 (1.1 or 1.2)."""
import sys

import torch

from tests.tools.helpers import NUM_CLASSES, mmaction_tools, run


def test_mmaction_train_and_test_tools_run_the_config(trained, tmp_path):
    cfg = str(trained / 'cfg.py')
    proc = run([sys.executable, mmaction_tools('train.py'), cfg,
                '--work-dir', str(tmp_path / 'wd'),
                '--cfg-options', 'train_cfg.max_epochs=1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'wd' / 'epoch_1.pth').is_file()
    proc = run([sys.executable, mmaction_tools('test.py'), cfg,
                str(trained / 'wd' / 'epoch_2.pth'),
                '--work-dir', str(tmp_path / 'test')])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'acc/top1' in proc.stdout + proc.stderr


def test_mmaction2_inferencer_runs_the_config(trained):
    """MMAction2Inferencer (which swaps ThreeCrop for CenterCrop to save
    memory) gives the scores of init_recognizer + inference_recognizer
    with that one change."""
    from mmaction.apis import inference_recognizer, init_recognizer
    from mmaction.apis.inferencers import MMAction2Inferencer
    from mmengine.config import Config

    from vivit_mm.compat import pred_score_of
    cfg, ckpt = str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')
    video = str(trained / 'videos' / 'v0.mp4')
    inferencer = MMAction2Inferencer(rec=cfg, rec_weights=ckpt,
                                     device='cpu')
    result = inferencer(video)['predictions'][0]
    scores = torch.tensor(result['rec_scores'][0])
    assert scores.shape == (NUM_CLASSES, )
    ref_cfg = Config.fromfile(cfg)
    for pipeline in (ref_cfg.test_pipeline,
                     ref_cfg.test_dataloader.dataset.pipeline):
        for t in pipeline:
            if t['type'] == 'ThreeCrop':
                t['type'] = 'CenterCrop'
    ref = pred_score_of(inference_recognizer(
        init_recognizer(ref_cfg, ckpt, device='cpu'), video))
    torch.testing.assert_close(scores, ref.float(), rtol=1e-4, atol=1e-5)
