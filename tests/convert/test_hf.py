"""HuggingFace ViViT <-> vivit_mm, proven by numerical parity.

The reference is ``transformers.VivitForVideoClassification`` itself (eager
attention), built here with a tiny config and every parameter re-drawn at
random: HuggingFace initialises the CLS token and position table to zero,
which would hide mapping bugs. ``transformers`` is imported inside the
helpers only, so collecting this file stays cheap.
"""
import json
import os
import shutil
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
import torch
from mmaction.apis import init_recognizer
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from tests.conftest import REPO
from tests.convert.conftest import WHY
from vivit_mm.compat import pred_score_of
from vivit_mm.convert import (convert_hf_model_dir, detect_hf_layout,
                              export_hf_model_dir, hf_config_to_backbone,
                              hf_to_vivit_state_dict, recognizer_config,
                              save_checkpoint, vivit_to_hf_state_dict,
                              write_config)
from vivit_mm.convert.hf import hf_input_normalisation

LABELS = ['abseiling', 'air drumming', "answering 'questions'", 'archery',
          'arm wrestling']
TINY = dict(image_size=32, num_frames=4, tubelet_size=[2, 8, 8],
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, hidden_act='gelu_fast',
            layer_norm_eps=1e-6, qkv_bias=True)
# transformers 5.x key fragments -> 4.x (the same tensors).
RENAMES_5_TO_4 = [('vivit.layers.', 'vivit.encoder.layer.'),
                  ('.attention.q_proj.', '.attention.attention.query.'),
                  ('.attention.k_proj.', '.attention.attention.key.'),
                  ('.attention.v_proj.', '.attention.attention.value.'),
                  ('.attention.o_proj.', '.attention.output.dense.'),
                  ('.mlp.fc1.', '.intermediate.dense.'),
                  ('.mlp.fc2.', '.output.dense.')]


def require_hf():
    """Skip the test without the optional transformers/safetensors."""
    pytest.importorskip('transformers')
    pytest.importorskip('safetensors')


def transformers_major() -> int:
    import transformers
    return int(transformers.__version__.split('.')[0])


def random_hf_model(seed=0, labels=LABELS, **overrides):
    """A tiny VivitForVideoClassification with every parameter random."""
    require_hf()
    from transformers import VivitConfig, VivitForVideoClassification
    kw = dict(TINY, **overrides)
    cfg = VivitConfig(num_labels=len(labels),
                      id2label=dict(enumerate(labels)),
                      label2id={n: i for i, n in enumerate(labels)}, **kw)
    cfg._attn_implementation = 'eager'
    model = VivitForVideoClassification(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def load_hf(path):
    require_hf()
    from transformers import VivitForVideoClassification
    return VivitForVideoClassification.from_pretrained(
        str(path), attn_implementation='eager').eval()


def rename(sd, to_layout):
    """Re-key a HuggingFace state dict into ``to_layout`` (written here,
    independently of the converter)."""
    pairs = RENAMES_5_TO_4 if to_layout == '4.x' else [
        (b, a) for a, b in RENAMES_5_TO_4]
    out = {}
    for k, v in sd.items():
        for a, b in pairs:  # attention.output.dense goes before output.dense
            k = k.replace(a, b)
        out[k] = v
    return out


def save_other_layout(src: Path, dst: Path, layout: str, fmt='safetensors'):
    from safetensors.torch import load_file, save_file
    sd = rename(load_file(str(src / 'model.safetensors')), layout)
    dst.mkdir()
    shutil.copy(src / 'config.json', dst / 'config.json')
    if fmt == 'safetensors':
        save_file(sd, str(dst / 'model.safetensors'),
                  metadata={'format': 'pt'})
    else:
        torch.save(sd, dst / 'pytorch_model.bin')


def video(seed=0, frames=4):
    """The same normalised clip in HuggingFace [B, T, C, H, W] and ours
    [B, C, T, H, W]."""
    x = torch.randn(2, frames, 3, 32, 32,
                    generator=torch.Generator().manual_seed(seed))
    return x, x.transpose(1, 2)


def write_video(path, frames=24):
    """A small random mp4 (64 x 48: decord needs a width of 64)."""
    import cv2
    import numpy as np
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 25,
                             (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return str(path)


def ours_logits(cfg_path, ckpt_path, x):
    model = init_recognizer(str(cfg_path), str(ckpt_path), device='cpu')
    with torch.no_grad():
        return model.cls_head(model.backbone(x))


@pytest.fixture(scope='module')
def hf_dir(tmp_path_factory):
    """A random tiny model saved by save_pretrained (installed layout)."""
    path = tmp_path_factory.mktemp('hf') / 'installed'
    model = random_hf_model()
    model.save_pretrained(str(path))
    x, _ = video()
    with torch.no_grad():
        logits = model(pixel_values=x).logits
    return path, logits


# --------------------------------------------------------------- tests
def test_cli_converts_installed_layout_with_parity(hf_dir, tmp_path):
    src, hf_logits = hf_dir
    from safetensors.torch import load_file
    # transformers 5.24 saves the 4.x names (it renames modules on save)
    layout = detect_hf_layout(load_file(str(src / 'model.safetensors')))
    out = subprocess.run(
        [sys.executable, str(REPO / 'tools/convert/hf_to_vivit.py'),
         str(src), str(tmp_path / 'm.pth'), '--out-config',
         str(tmp_path / 'm.py'), '--out-label-map',
         str(tmp_path / 'labels.txt')],
        capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    _, x = video()
    torch.testing.assert_close(ours_logits(tmp_path / 'm.py',
                                           tmp_path / 'm.pth', x),
                               hf_logits, atol=1e-4, rtol=1e-4)
    cfg = Config.fromfile(str(tmp_path / 'm.py'))
    bb = cfg.model.backbone
    assert (bb.type, bb.img_size, bb.num_frames, bb.patch_size,
            bb.tubelet_size, bb.pooling) == ('ViViTM1', 32, 4, 8, 2, 'token')
    assert bb.act_cfg == dict(type='GELU', approximate='tanh')
    assert bb.norm_cfg == dict(type='LN', eps=1e-6)
    assert cfg.model.data_preprocessor.mean == [127.5] * 3
    assert cfg.model.data_preprocessor.std == [127.5] * 3
    assert cfg.model.cls_head.average_clips == 'score'
    assert cfg.label_names == LABELS
    assert (tmp_path / 'labels.txt').read_text().splitlines() == LABELS
    assert [p['type'] for p in cfg.test_pipeline] == [
        'VideoReadGuard', 'Resize', 'ThreeCrop', 'FormatShape',
        'PackActionInputs']
    assert [p['type'] for p in cfg.test_pipeline[0]['transforms']] == [
        'DecordInit', 'SampleFrames', 'DecordDecode']
    assert cfg.test_pipeline[1]['scale'] == (-1, 32)  # crops span it
    assert cfg.test_pipeline[0]['transforms'][1]['clip_len'] == 4
    assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline
    ckpt = torch.load(tmp_path / 'm.pth', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert ckpt['meta']['hf_layout'] == layout
    assert all(k.startswith(('backbone.', 'cls_head.'))
               for k in ckpt['state_dict'])


@pytest.mark.parametrize('fmt', ['safetensors', 'bin'])
def test_other_layout_converts_to_same_weights(hf_dir, tmp_path, fmt):
    src, hf_logits = hf_dir
    from safetensors.torch import load_file
    saved = detect_hf_layout(load_file(str(src / 'model.safetensors')))
    other = '5.x' if saved == '4.x' else '4.x'
    save_other_layout(src, tmp_path / 'other', other, fmt)
    if transformers_major() >= 5 and fmt == 'safetensors':
        # transformers 5 reads its module names too: proof that the
        # renaming above really is the 5.x layout.
        with torch.no_grad():
            got = load_hf(tmp_path / 'other')(pixel_values=video()[0]).logits
        torch.testing.assert_close(got, hf_logits, atol=0, rtol=0)
    convert_hf_model_dir(str(tmp_path / 'other'), tmp_path / 'm.pth',
                         tmp_path / 'm.py')
    convert_hf_model_dir(str(src), tmp_path / 'ref.pth', tmp_path / 'ref.py')
    a = torch.load(tmp_path / 'm.pth', weights_only=True)
    b = torch.load(tmp_path / 'ref.pth', weights_only=True)
    assert a['meta']['hf_layout'] == other
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for k in a['state_dict']:
        assert torch.equal(a['state_dict'][k], b['state_dict'][k]), k
    torch.testing.assert_close(ours_logits(tmp_path / 'm.py',
                                           tmp_path / 'm.pth', video()[1]),
                               hf_logits, atol=1e-4, rtol=1e-4)


def test_exact_gelu_no_qkv_bias_eps_and_tubelet_1(tmp_path):
    """Every mapped option matters: exact GELU (differs from the tanh form
    by ~1e-3), no q/k/v bias, LN eps 1e-5, a tubelet of extent 1."""
    model = random_hf_model(seed=3, hidden_act='gelu', qkv_bias=False,
                            layer_norm_eps=1e-5, tubelet_size=[1, 8, 8],
                            num_frames=3,
                            labels=[f'LABEL_{i}' for i in range(3)])
    model.save_pretrained(str(tmp_path / 'hf'))
    cfg = convert_hf_model_dir(str(tmp_path / 'hf'), tmp_path / 'm.pth',
                               tmp_path / 'm.py', num_clips=2)
    bb = cfg['model']['backbone']
    assert bb['act_cfg'] == dict(type='GELU', approximate='none')
    assert (bb['qkv_bias'], bb['norm_cfg']['eps'], bb['tubelet_size']) == (
        False, 1e-5, 1)
    assert 'label_names' not in cfg  # LABEL_i placeholders are dropped
    x, ours_x = video(4, frames=3)
    with torch.no_grad():
        ref = model(pixel_values=x).logits
    torch.testing.assert_close(ours_logits(tmp_path / 'm.py',
                                           tmp_path / 'm.pth', ours_x),
                               ref, atol=1e-4, rtol=1e-4)


def _random_recognizer(tmp_path):
    backbone, _, _ = hf_config_to_backbone(
        dict(model_type='vivit', **TINY))
    backbone['arch'] = dict(backbone['arch'])
    cfg = recognizer_config(backbone, 5, label_names=LABELS)
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg['model']).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    save_checkpoint(model.state_dict(), tmp_path / 'ours.pth')
    write_config(cfg, tmp_path / 'ours.py')
    return model, cfg


@pytest.mark.parametrize('layout', ['5.x', '4.x'])
def test_round_trip_ours_hf_ours(tmp_path, layout):
    require_hf()
    model, cfg = _random_recognizer(tmp_path)
    sys.path.insert(0, str(REPO / 'tools/convert'))
    try:
        import vivit_to_hf as cli
    finally:
        sys.path.pop(0)
    assert cli.main([str(tmp_path / 'ours.pth'), str(tmp_path / 'ours.py'),
                     str(tmp_path / 'hf'), '--layout', layout]) == 0
    hf_config = json.loads((tmp_path / 'hf' / 'config.json').read_text())
    assert hf_config['id2label']['2'] == LABELS[2]
    x, ours_x = video(6)
    if layout == '4.x' or transformers_major() >= 5:
        hf = load_hf(tmp_path / 'hf')  # transformers 5 reads both layouts
        with torch.no_grad():
            torch.testing.assert_close(
                hf(pixel_values=x).logits,
                model.cls_head(model.backbone(ours_x)), atol=1e-4, rtol=1e-4)
    back = convert_hf_model_dir(str(tmp_path / 'hf'), tmp_path / 'back.pth',
                                tmp_path / 'back.py')
    assert back['model'] == cfg['model']
    assert back['label_names'] == LABELS
    sd = torch.load(tmp_path / 'back.pth', weights_only=True)['state_dict']
    orig = torch.load(tmp_path / 'ours.pth', weights_only=True)['state_dict']
    assert sd.keys() == orig.keys()
    for k in sd:
        assert torch.equal(sd[k], orig[k]), k


def test_state_dict_round_trip_is_exact_both_layouts():
    model = random_hf_model(seed=7)
    sd = model.state_dict()
    ours = hf_to_vivit_state_dict(sd)
    for layout in ('4.x', '5.x'):
        hf = vivit_to_hf_state_dict(ours, layout)
        assert detect_hf_layout(hf) == layout
        again = hf_to_vivit_state_dict(hf)
        assert all(torch.equal(again[k], ours[k]) for k in ours)
    native = vivit_to_hf_state_dict(ours, f'{transformers_major()}.x')
    assert native.keys() == sd.keys()
    assert all(torch.equal(native[k], sd[k]) for k in sd)


def test_processor_normalisation_matches_hf_processor(hf_dir, tmp_path):
    import numpy as np
    from transformers import VivitImageProcessor
    proc = VivitImageProcessor()  # HuggingFace defaults
    proc.save_pretrained(str(tmp_path))
    mean, std = hf_input_normalisation(str(tmp_path))
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3),
                                               dtype=np.uint8)
    ref = proc(list(frames), do_resize=False, do_center_crop=False,
               return_tensors='pt')['pixel_values'][0]  # [T, C, H, W]
    x = torch.from_numpy(frames).float().permute(0, 3, 1, 2)
    ours = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(
        std)[:, None, None]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert mean == [191.25] * 3 and std == [63.75] * 3  # range [-3, 1]

    src, _ = hf_dir
    shutil.copytree(src, tmp_path / 'hf')
    proc.save_pretrained(str(tmp_path / 'hf'))
    cfg = convert_hf_model_dir(str(tmp_path / 'hf'), tmp_path / 'm.pth',
                               tmp_path / 'm.py', normalisation='processor')
    assert cfg['model']['data_preprocessor']['mean'] == mean


def test_clear_errors(hf_dir, tmp_path):
    src, _ = hf_dir
    from safetensors.torch import load_file
    sd = load_file(str(src / 'model.safetensors'))
    # unknown layout
    with pytest.raises(ValueError, match='Cannot tell the layout of the '
                       'HuggingFace ViViT checkpoint'):
        hf_to_vivit_state_dict({k.replace('.attention.', '.attn_block.'): v
                                for k, v in sd.items()})
    # a key the mapping does not know
    with pytest.raises(ValueError, match='does not know'):
        hf_to_vivit_state_dict({**sd, 'vivit.extra.weight': torch.ones(1)})
    # no classifier (a VivitModel checkpoint)
    with pytest.raises(ValueError, match='classifier'):
        hf_to_vivit_state_dict({k: v for k, v in sd.items()
                                if not k.startswith('classifier')})
    # config/weights mismatch: config.json claims 3 layers, weights have 2
    bad = tmp_path / 'bad'
    shutil.copytree(src, bad)
    cfg = json.loads((bad / 'config.json').read_text())
    (bad / 'config.json').write_text(json.dumps(dict(cfg,
                                                     num_hidden_layers=3)))
    with pytest.raises(ValueError, match='Config/weights mismatch.*missing'):
        convert_hf_model_dir(str(bad), tmp_path / 'x.pth', tmp_path / 'x.py')
    (bad / 'config.json').write_text(json.dumps(dict(cfg, image_size=48)))
    with pytest.raises(ValueError, match='Config/weights mismatch.*pos_embed'):
        convert_hf_model_dir(str(bad), tmp_path / 'x.pth', tmp_path / 'x.py')
    assert not (tmp_path / 'x.pth').exists()
    # unsupported activation
    with pytest.raises(ValueError, match="hidden_act 'quick_gelu'"):
        hf_config_to_backbone(dict(cfg, hidden_act='quick_gelu'))
    # no weights in the folder
    (bad / 'model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='No weights'):
        convert_hf_model_dir(str(bad), tmp_path / 'x.pth', tmp_path / 'x.py')
    # MMAction2's ThreeCrop spans the short side: no larger test scale
    backbone, _, _ = hf_config_to_backbone(cfg)
    with pytest.raises(ValueError, match='test_scale must equal'):
        recognizer_config(backbone, 5, test_scale=40)
    assert recognizer_config(backbone, 5, three_crop=False, test_scale=40)[
        'test_pipeline'][1]['scale'] == (-1, 40)
    # export of a model HuggingFace cannot express
    gap = recognizer_config(dict(type='ViViTM1', arch=dict(
        embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64),
        img_size=32, num_frames=4, patch_size=8, pooling='gap'), 5)
    with DefaultScope.overwrite_default_scope('mmaction'):
        m = MODELS.build(gap['model'])
    save_checkpoint(m.state_dict(), tmp_path / 'gap.pth')
    write_config(gap, tmp_path / 'gap.py')
    with pytest.raises(ValueError, match="pooling='token'"):
        export_hf_model_dir(str(tmp_path / 'gap.pth'),
                            str(tmp_path / 'gap.py'), str(tmp_path / 'o'))


def test_converted_config_runs_the_video_pipeline(hf_dir, tmp_path):
    """The written test pipeline decodes a real video into 2 clips x 3 crops,
    normalises to [-1, 1] and averages the views' logits; HuggingFace on the
    same (decoded, cropped) pixels scaled to [-1, 1] agrees."""
    from mmaction.apis import inference_recognizer
    from mmengine.dataset import Compose
    src, _ = hf_dir
    path = write_video(tmp_path / 'clip.mp4')
    convert_hf_model_dir(str(src), tmp_path / 'm.pth', tmp_path / 'm.py',
                         num_clips=2)
    model = init_recognizer(str(tmp_path / 'm.py'), str(tmp_path / 'm.pth'),
                            device='cpu')
    sample = dict(filename=path, label=-1, start_index=0, modality='RGB')
    views = Compose(model.cfg.test_pipeline)(dict(sample))['inputs']
    assert views.shape == (6, 3, 4, 32, 32)  # [clips x crops, C, T, H, W]
    result = inference_recognizer(model, path)
    score = pred_score_of(result)
    pixels = (views.float() - 127.5) / 127.5
    with torch.no_grad():
        ref = load_hf(src)(pixel_values=pixels.transpose(1, 2)).logits
    torch.testing.assert_close(score, ref.mean(0), atol=1e-4, rtol=1e-4)


def test_converted_config_drives_the_test_runner(hf_dir, tmp_path):
    """What ``tools/test.py CONFIG CHECKPOINT`` does: Runner.from_cfg on the
    written config (only the data paths and workers changed), then test."""
    from mmaction.apis import inference_recognizer
    from mmengine.runner import Runner
    src, _ = hf_dir
    (tmp_path / 'videos').mkdir()
    video_path = write_video(tmp_path / 'videos' / 'a.mp4')
    convert_hf_model_dir(str(src), tmp_path / 'm.pth', tmp_path / 'm.py',
                         num_clips=1, ann_file=str(tmp_path / 'ann.txt'),
                         data_prefix=str(tmp_path / 'videos'))
    result = inference_recognizer(
        init_recognizer(str(tmp_path / 'm.py'), str(tmp_path / 'm.pth'),
                        device='cpu'), video_path)
    score = pred_score_of(result)
    # label the video with the predicted class: the runner must agree
    (tmp_path / 'ann.txt').write_text(f'a.mp4 {int(score.argmax())}\n')
    cfg = Config.fromfile(str(tmp_path / 'm.py'))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(tmp_path / 'm.pth')
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    metrics = Runner.from_cfg(cfg).test()
    assert metrics['acc/top1'] == 1.0


def test_hf_converter_refuses_hostile_pytorch_model_bin(tmp_path, hostile):
    path, marker = hostile
    folder = tmp_path / 'hf'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps(dict(
        model_type='vivit', hidden_size=32, num_hidden_layers=1)))
    os.replace(path, folder / 'pytorch_model.bin')
    with pytest.raises(ValueError, match=f'Refusing.*{WHY}'):
        convert_hf_model_dir(str(folder), str(tmp_path / 'o.pth'),
                             str(tmp_path / 'o.py'))
    tool = SourceFileLoader('hf_to_vivit', os.path.join(
        REPO, 'tools', 'convert', 'hf_to_vivit.py')).load_module()
    assert tool.main([str(folder), str(tmp_path / 'o.pth'), '--out-config',
                      str(tmp_path / 'o.py')]) == 1
    assert not marker.exists()
    assert not (tmp_path / 'o.pth').exists()
