"""tools/train.py, tools/test.py, tools/dist_test.sh (2 gloo processes on
the CPU), resume, inference and the demo, on generated mp4 files read
through the configs' own transforms (Kinetics-400 Model 2 config, model and
sizes shrunk)."""
import json
import math
import os
import socket
import subprocess
import sys

import cv2
import mmengine
import numpy as np
import pytest
import torch
from mmaction.apis import inference_recognizer, init_recognizer
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.runner import save_checkpoint

from vivit_mm.utils.checkpoint import safe_load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K400_M2 = os.path.join(REPO, 'configs', 'vivit_m2_k400.py')
TINY = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
NUM_CLASSES = 6
# (width, height, frames, label): landscape, portrait, and a video shorter
# than one clip (4 frames with stride 2 span 7 frames).
VIDEOS = [(64, 48, 12, 0), (40, 56, 12, 1), (64, 48, 3, 2), (40, 56, 14, 0),
          (80, 64, 10, 1)]


def write_video(path, width, height, frames, seed):
    """A bar moving across a noisy background, written as mp4v."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (width, height))
    for t in range(frames):
        img = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        x = (3 * t + 7 * seed) % width
        img[:, x:x + 5] = (255, 200, 50)
        writer.write(img)
    writer.release()


def shrink_pipeline(pipeline):
    """The config's transforms with clip length and sizes scaled down."""
    for t in pipeline:
        if t['type'] == 'SampleFrames':
            t['clip_len'] = 4
        elif t['type'] == 'Resize':
            t['scale'] = (-1, 40 if t['scale'][1] == 256 else 32)
        elif t['type'] == 'RandomCrop':
            t['size'] = 32
        elif t['type'] in ('CenterCrop', 'ThreeCrop'):
            t['crop_size'] = 32


def tiny_config(data_dir):
    """vivit_m2_k400.py with a tiny model, small clips and local videos."""
    cfg = Config.fromfile(K400_M2)
    cfg.model.backbone.update(arch=TINY, img_size=32, num_frames=4,
                              num_temporal_layers=1)
    cfg.model.cls_head.update(num_classes=NUM_CLASSES, in_channels=32)
    shrink_pipeline(cfg.test_pipeline)
    ann = os.path.join(data_dir, 'list.txt')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(ann_file=ann, data_prefix=dict(video=data_dir))
        shrink_pipeline(loader.dataset.pipeline)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_epochs=2, val_interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = []  # no ImageNet checkpoint here
    cfg.randomness = dict(seed=0)
    return cfg


def _env():
    env = dict(os.environ)
    env['PATH'] = os.path.dirname(sys.executable) + ':' + env['PATH']
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def run(args, **kwargs):
    return subprocess.run(args, cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=300, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Videos, the tiny config and a 2-epoch run of tools/train.py."""
    ws = tmp_path_factory.mktemp('tools')
    data = ws / 'videos'
    data.mkdir()
    lines = []
    for i, (w, h, n, label) in enumerate(VIDEOS):
        write_video(data / f'v{i}.mp4', w, h, n, seed=i)
        lines.append(f'v{i}.mp4 {label}')
    (data / 'list.txt').write_text('\n'.join(lines) + '\n')
    cfg_path = ws / 'cfg.py'
    tiny_config(str(data)).dump(str(cfg_path))
    proc = run([sys.executable, 'tools/train.py', str(cfg_path),
                '--work-dir', str(ws / 'wd')])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ws


def expected_lr(i, base=0.1, iters_per_epoch=3, epochs=30):
    """The config's schedule at iteration i: 2.5 warm-up epochs from
    1e-3 x base, then cosine to 0 at the last epoch."""
    warm = int(2.5 * iters_per_epoch)
    if i < warm:
        return base * (1e-3 + (1 - 1e-3) * min(i, warm - 1) / (warm - 1))
    return base * 0.5 * (1 + math.cos(math.pi * (i - warm) /
                                      (epochs * iters_per_epoch - warm)))


def test_train_saves_then_resumes(trained):
    ckpt2 = safe_load(trained / 'wd' / 'epoch_2.pth')
    assert ckpt2['meta']['epoch'] == 2 and ckpt2['meta']['iter'] == 6
    proc = run([sys.executable, 'tools/train.py', str(trained / 'cfg.py'),
                '--work-dir', str(trained / 'wd_resume'), '--resume',
                str(trained / 'wd' / 'epoch_2.pth'), '--cfg-options',
                'train_cfg.max_epochs=3'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt3 = safe_load(trained / 'wd_resume' / 'epoch_3.pth')
    assert ckpt3['meta']['epoch'] == 3 and ckpt3['meta']['iter'] == 9
    # The log history, optimizer and scheduler were restored: 9 learning
    # rates that follow the schedule without restarting the warm-up.
    lrs = ckpt3['message_hub']['log_scalars']['train/lr'].data[0]
    np.testing.assert_allclose(lrs, [expected_lr(i) for i in range(9)],
                               rtol=1e-6)
    np.testing.assert_array_equal(
        lrs[:6], ckpt2['message_hub']['log_scalars']['train/lr'].data[0])
    assert 'momentum_buffer' in str(ckpt3['optimizer']['state'])
    w2 = ckpt2['state_dict']['cls_head.fc_cls.weight']
    assert not torch.equal(w2, ckpt3['state_dict']['cls_head.fc_cls.weight'])


def _dumped(path):
    preds = mmengine.load(str(path))
    scores = torch.stack([p['pred_scores']['item'] for p in preds])
    labels = [int(p['gt_labels']['item']) for p in preds]
    return scores, labels


def test_dist_test_on_cpu_matches_single_process(trained):
    cfg, ckpt = str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')
    single = run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir',
                  str(trained / 't1'), '--dump', str(trained / 't1.pkl')])
    assert single.returncode == 0, single.stderr[-3000:]
    env_port = dict(PORT=free_port())
    dist = subprocess.run(
        ['bash', 'tools/dist_test.sh', cfg, ckpt, '2', '--work-dir',
         str(trained / 't2'), '--dump', str(trained / 't2.pkl')],
        cwd=REPO, env={**_env(), **env_port}, capture_output=True, text=True,
        timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    assert "'backend': 'gloo'" in dist.stdout + dist.stderr
    m1 = json.loads((trained / 't1' / 'test_metrics.json').read_text())
    m2 = json.loads((trained / 't2' / 'test_metrics.json').read_text())
    assert m1 == m2  # exactly the same accuracy
    s1, l1 = _dumped(trained / 't1.pkl')
    s2, l2 = _dumped(trained / 't2.pkl')
    # 5 videos on 2 ranks: the sampler's padding duplicate is dropped and
    # the order restored.
    assert l1 == l2 == [v[3] for v in VIDEOS]
    torch.testing.assert_close(s1, s2, rtol=0, atol=1e-6)
    top1 = float(np.mean(s1.argmax(1).numpy() == np.array(l1)))
    assert m1['acc/top1'] == pytest.approx(top1)


def test_train_compile_with_paramwise_cfg_matches_eager(trained, tmp_path):
    """compile=True with a paramwise_cfg (ConfigDict param groups, which
    dynamo cannot trace on their own) trains, and gives the weights of the
    same run without compile. Dynamo's 'eager' backend keeps it fast: the
    failure it guards against is in dynamo's tracing, not in inductor."""
    cfg = Config.fromfile(str(trained / 'cfg.py'))
    cfg.optim_wrapper.paramwise_cfg = dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={'cls_token': dict(lr_mult=10.0, decay_mult=0.0)})
    cfg.train_cfg.update(max_epochs=1, val_interval=10)
    cfg_path = tmp_path / 'paramwise.py'
    cfg.dump(str(cfg_path))
    results = {}
    for name, extra in (('eager', []),
                        ('compiled', ['--cfg-options',
                                      'compile.backend=eager'])):
        proc = run([sys.executable, 'tools/train.py', str(cfg_path),
                    '--work-dir', str(tmp_path / name)] + extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = (proc.stdout + proc.stderr,
                         safe_load(tmp_path / name / 'epoch_1.pth'))
    log, ckpt = results['compiled']
    assert 'Model has been "compiled"' in log
    assert 'made plain dicts' in log
    assert 'Model has been "compiled"' not in results['eager'][0]
    eager = results['eager'][1]['state_dict']
    for k, v in ckpt['state_dict'].items():
        torch.testing.assert_close(v, eager[k], rtol=1e-5, atol=1e-6)
    # the custom key's 10x learning rate survived the conversion
    groups = ckpt['optimizer']['param_groups']
    assert {g['lr_mult'] for g in groups if 'lr_mult' in g} == {10.0}


def test_train_amp_on_cpu_trains_in_bf16(trained, tmp_path):
    """--amp without CUDA: BF16OptimWrapper, float32 checkpoint."""
    proc = run([sys.executable, 'tools/train.py', str(trained / 'cfg.py'),
                '--work-dir', str(tmp_path / 'amp'), '--amp',
                '--cfg-options', 'train_cfg.max_epochs=1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "type='BF16OptimWrapper'" in log
    state = safe_load(tmp_path / 'amp' / 'epoch_1.pth')['state_dict']
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all()
               for v in state.values() if v.is_floating_point())


def test_test_tool_compile_matches_eager(trained):
    cfg, ckpt = str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')
    dumps = []
    for name, extra in (('eager', []),
                        ('compiled', ['--compile', '--cfg-options',
                                      'compile.backend=eager'])):
        proc = run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir',
                    str(trained / f'tc_{name}'), '--dump',
                    str(trained / f'tc_{name}.pkl')] + extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        dumps.append(_dumped(trained / f'tc_{name}.pkl'))
    assert "Backbone compiled: torch.compile({'backend': 'eager'})" \
        in proc.stdout + proc.stderr
    assert dumps[0][1] == dumps[1][1]
    torch.testing.assert_close(dumps[0][0], dumps[1][0], rtol=1e-5,
                               atol=1e-6)


def test_test_tool_refuses_code_running_checkpoint(trained, tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    hostile = tmp_path / 'hostile.pth'
    torch.save(dict(state_dict={}, meta=Payload()), hostile)
    proc = run([sys.executable, 'tools/test.py', str(trained / 'cfg.py'),
                str(hostile), '--work-dir', str(tmp_path / 'wd')])
    assert proc.returncode != 0
    assert 'Refusing to load checkpoint' in proc.stderr
    assert not marker.exists()


def _manual_scores(model, data):
    """Reference: per-view logits of backbone + head, averaged."""
    views = data['inputs'].float()  # [views, C, T, H, W]
    x = (views - 127.5) / 127.5
    with torch.no_grad():
        return model.cls_head(model.backbone(x)).mean(0)


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
        torch.testing.assert_close(scores, _manual_scores(model, data),
                                   rtol=1e-5, atol=1e-5)

    from importlib.machinery import SourceFileLoader
    demo_py = os.path.join(REPO, 'demo', 'demo.py')
    demo = SourceFileLoader('vivit_demo', demo_py).load_module()
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


def test_inference_with_the_real_k400_test_pipeline(tmp_path):
    """vivit_m2_k400.py unchanged except for a tiny width and depth: 32
    frames with stride 2, 4 clips x 3 crops of 224, on videos of other
    sizes, a portrait one and one shorter than a clip."""
    cfg = Config.fromfile(K400_M2)
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
        scores = result.pred_scores.item
        assert scores.shape == (400, ) and torch.isfinite(scores).all()
        if i == 1:  # portrait and shorter than the 63-frame clip span
            data = pipeline(dict(filename=str(video), label=-1,
                                 start_index=0, modality='RGB'))
            assert data['inputs'].shape == (12, 3, 32, 224, 224)
            torch.testing.assert_close(scores, _manual_scores(model, data),
                                       rtol=1e-4, atol=1e-5)
