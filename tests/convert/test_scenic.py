"""Official (scenic/flax) checkpoints -> vivit_mm.

Parameter trees are built here with scenic's names and shapes and random
values. The reference forward pass below is written directly from those
trees, in flax's own layouts (channels-last video, ``(in, out)`` Dense
kernels, ``(D, heads, head_dim)`` attention kernels, einsums as in scenic's
``dot_product_attention`` and ``factorized_dot_product_attention``); it
shares no code with the converter or the vivit_mm models.
"""
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmaction.apis import init_recognizer

from tests.conftest import REPO
from vivit_mm.convert import (convert_scenic_checkpoint, detect_scenic_model,
                              find_params, scenic_to_vivit)

D, HEADS, MLP, LAYERS, CLASSES = 32, 4, 64, 2, 5
T, IMG, PATCH, TUBE = 4, 32, 8, 2  # 2 x 4 x 4 = 32 tokens


# ------------------------------------------------------- parameter trees
def _rand(rng, *shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _ln(rng):
    return {'scale': 1 + _rand(rng, D, scale=0.1), 'bias': _rand(rng, D)}


def _mhdpa(rng):
    hd = D // HEADS
    return {**{n: {'kernel': _rand(rng, D, HEADS, hd),
                   'bias': _rand(rng, HEADS, hd)}
               for n in ('query', 'key', 'value')},
            'out': {'kernel': _rand(rng, HEADS, hd, D), 'bias': _rand(rng, D)}}


def _mlp(rng):
    return {'Dense_0': {'kernel': _rand(rng, D, MLP), 'bias': _rand(rng, MLP)},
            'Dense_1': {'kernel': _rand(rng, MLP, D), 'bias': _rand(rng, D)}}


def _block(rng, model):
    if model == 3:
        return {'LayerNorm_time': _ln(rng),
                'MultiHeadDotProductAttention_time': _mhdpa(rng),
                'LayerNorm_space': _ln(rng),
                'MultiHeadDotProductAttention_space': _mhdpa(rng),
                'LayerNorm_mlp': _ln(rng), 'MlpBlock': _mlp(rng)}
    return {'LayerNorm_0': _ln(rng), 'MultiHeadDotProductAttention_0':
            _mhdpa(rng), 'LayerNorm_1': _ln(rng), 'MlpBlock_0': _mlp(rng)}


def _encoder(rng, num_tokens, layers=LAYERS, model=1):
    enc = {f'encoderblock_{i}': _block(rng, model) for i in range(layers)}
    enc['posembed_input'] = {'pos_embedding': _rand(rng, 1, num_tokens, D)}
    enc['encoder_norm'] = _ln(rng)
    return enc


def make_tree(model=1, token=True, temporal_layers=2, uniform=False, seed=0):
    """A scenic ViViT parameter tree (Model 1-4) with random values."""
    rng = np.random.default_rng(seed)
    n_t = T if uniform else T // TUBE
    n_s = (IMG // PATCH)**2
    kernel = (_rand(rng, PATCH, PATCH, 3, D) if uniform else
              _rand(rng, TUBE, PATCH, PATCH, 3, D))
    tree = {'embedding': {'kernel': kernel, 'bias': _rand(rng, D)},
            'output_projection': {'kernel': _rand(rng, D, CLASSES),
                                  'bias': _rand(rng, CLASSES)}}
    if model == 2:
        tree['SpatialTransformer'] = _encoder(rng, n_s + token)
        if token:
            tree['cls_SpatialTransformer'] = _rand(rng, 1, 1, D)
        if temporal_layers:
            tree['TemporalTransformer'] = _encoder(rng, n_t + token,
                                                   temporal_layers)
            if token:
                tree['cls_TemporalTransformer'] = _rand(rng, 1, 1, D)
    else:
        tree['Transformer'] = _encoder(rng, n_t * n_s + token, model=model)
        if token:
            tree['cls'] = _rand(rng, 1, 1, D)
    return tree


def flat(tree, prefix=''):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, f'{prefix}{k}/'))
        else:
            out[prefix + k] = v
    return out


def train_state(params):
    """Old-scenic TrainState layout: params under optimizer/target, the
    momentum buffers mirroring them under optimizer/state."""
    momentum = {k: {'momentum': np.zeros_like(v)} for k, v in
                flat(params).items()}
    return {'global_step': np.int64(7),
            'optimizer': {'target': params,
                          'state': {'step': np.int64(7),
                                    'param_states': momentum}},
            'accum_train_time': 12.5, 'rng': np.arange(2, dtype=np.uint32)}


# ------------------------------------------- reference forward (flax)
def t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def layer_norm(x, p, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu)**2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * t(p['scale']) + t(p['bias'])


def gelu(x):  # flax nn.gelu: tanh approximation
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) *
                                     (x + 0.044715 * x**3)))


def dense(x, p):
    return x @ t(p['kernel']) + t(p['bias'])


def qkv(x, p):
    return [torch.einsum('...d,dhk->...hk', x, t(p[n]['kernel'])) +
            t(p[n]['bias']) for n in ('query', 'key', 'value')]


def dot_product_attention(q, k, v):  # [..., len, heads, hd]
    q = q / math.sqrt(q.shape[-1])
    w = torch.softmax(torch.einsum('...qhd,...khd->...hqk', q, k), -1)
    return torch.einsum('...hqk,...khd->...qhd', w, v)


def factorized_dot_product_attention(q, k, v):  # [b, t, s, heads, hd]
    q = q / math.sqrt(q.shape[-1])
    outs = []
    for i, (qi, ki, vi) in enumerate(zip(q.chunk(2, -2), k.chunk(2, -2),
                                         v.chunk(2, -2))):
        b = 'abcdefghijk'[:i + 1]
        w = torch.softmax(torch.einsum(f'{b}x...z,{b}y...z->{b}x...y', qi,
                                       ki), -1)
        outs.append(torch.einsum(f'{b}x...y,{b}y...z->{b}x...z', w, vi))
    return torch.cat(outs, -2)


def mhdpa(x, p, attention_fn=dot_product_attention):
    y = attention_fn(*qkv(x, p))
    return torch.einsum('...hk,hkd->...d', y, t(p['out']['kernel'])) + \
        t(p['out']['bias'])


def mlp(x, p):
    return dense(gelu(dense(x, p['Dense_0'])), p['Dense_1'])


def encoder_block(x, p, attention_fn=dot_product_attention):
    x = x + mhdpa(layer_norm(x, p['LayerNorm_0']),
                  p['MultiHeadDotProductAttention_0'], attention_fn)
    return x + mlp(layer_norm(x, p['LayerNorm_1']), p['MlpBlock_0'])


def factorized_self_attention_block(x, p, n_t, order='time_space'):
    b, thw, d = x.shape
    x = x.reshape(b, n_t, -1, d)
    for axis in ('time', 'space') if order == 'time_space' else ('space',
                                                                 'time'):
        y = x.transpose(1, 2) if axis == 'time' else x  # attend on dim 2
        y = y + mhdpa(layer_norm(y, p[f'LayerNorm_{axis}']),
                      p[f'MultiHeadDotProductAttention_{axis}'])
        x = y.transpose(1, 2) if axis == 'time' else y
    x = x.reshape(b, thw, d)
    return x + mlp(layer_norm(x, p['LayerNorm_mlp']), p['MlpBlock'])


def embed(video, p):
    """video [B, T, H, W, C] -> tokens [B, n_t, n_s, D] (flax Conv, VALID,
    stride = kernel), written as a patch einsum."""
    k = t(p['kernel'])
    if k.dim() == 4:
        k = k[None]  # a 2D conv per frame = a tubelet of extent 1
    kt, kh, kw = k.shape[:3]
    B, Tn, H, W, C = video.shape
    v = video.reshape(B, Tn // kt, kt, H // kh, kh, W // kw, kw, C)
    x = torch.einsum('bTtHhWwc,thwcd->bTHWd', v, k) + t(p['bias'])
    return x.reshape(B, Tn // kt, -1, x.shape[-1])


def vit_encoder(x, enc, cls=None, block=encoder_block):
    if cls is not None:
        x = torch.cat([t(cls).expand(x.shape[0], -1, -1), x], 1)
    x = x + t(enc['posembed_input']['pos_embedding'])
    n = sum(k.startswith('encoderblock_') for k in enc)
    for i in range(n):
        x = block(x, enc[f'encoderblock_{i}'])
    x = layer_norm(x, enc['encoder_norm'])
    return x[:, 0] if cls is not None else x.mean(1)


def reference_logits(tree, video, model, order='time_space'):
    """scenic's ViViT / SpaceTimeViViT forward, from the tree alone."""
    tokens = embed(video, tree['embedding'])  # [B, n_t, n_s, D]
    B, n_t = tokens.shape[:2]
    if model == 2:
        frames = vit_encoder(tokens.flatten(0, 1), tree['SpatialTransformer'],
                             tree.get('cls_SpatialTransformer'))
        frames = frames.reshape(B, n_t, -1)
        feat = (vit_encoder(frames, tree['TemporalTransformer'],
                            tree.get('cls_TemporalTransformer'))
                if 'TemporalTransformer' in tree else frames.mean(1))
    else:
        def model3_block(x, p):
            return factorized_self_attention_block(x, p, n_t, order)

        def model4_block(x, p):  # scenic runs Model 4 blocks on [b, t, s, d]
            y = encoder_block(x.reshape(B, n_t, -1, x.shape[-1]), p,
                              factorized_dot_product_attention)
            return y.reshape(x.shape)

        block = {3: model3_block, 4: model4_block}.get(model, encoder_block)
        feat = vit_encoder(tokens.flatten(1, 2), tree['Transformer'],
                           tree.get('cls'), block)
    return dense(feat, tree['output_projection'])


# ------------------------------------------------------------- helpers
def video_pair(seed=0, frames=T):
    """The same normalised clip as ours [B, C, T, H, W] and flax's
    [B, T, H, W, C]."""
    x = torch.randn(2, 3, frames, IMG, IMG,
                    generator=torch.Generator().manual_seed(seed))
    return x, x.permute(0, 2, 3, 4, 1)


def ours_logits(cfg_path, ckpt_path, x):
    model = init_recognizer(str(cfg_path), str(ckpt_path), device='cpu')
    with torch.no_grad():
        return model.cls_head(model.backbone(x)), model


def save_npz(tree, path):
    np.savez(path, **flat(tree))


# --------------------------------------------------------------- tests
@pytest.mark.parametrize('model,token,kw', [
    (1, True, {}),
    (1, False, dict(model=1)),
    (3, False, dict(attention_order='time_space')),
    (3, False, dict(attention_order='space_time')),
    (4, False, dict(model=4)),
])
def test_models_1_3_4_match_reference(tmp_path, model, token, kw):
    tree = make_tree(model, token=token)
    save_npz(tree, tmp_path / 'params.npz')
    cfg, notes = convert_scenic_checkpoint(str(tmp_path / 'params.npz'),
                                           tmp_path / 'm.pth',
                                           tmp_path / 'm.py', img_size=IMG,
                                           **kw)
    bb = cfg['model']['backbone']
    assert bb['type'] == f'ViViTM{model}'
    assert (bb['num_frames'], bb['img_size'], bb['tubelet_size'],
            bb['patch_size']) == (T, IMG, TUBE, PATCH)
    assert bb['pooling'] == ('token' if token else 'gap')
    x, video = video_pair()
    ours, recognizer = ours_logits(tmp_path / 'm.py', tmp_path / 'm.pth', x)
    if model == 3:
        assert recognizer.backbone.attention_order == kw['attention_order']
        # Not recorded in the checkpoint: the notes say what was assumed
        # and that ViViTM3's own default differs.
        assert any(f"attention_order={kw['attention_order']!r}" in n
                   and "scenic's default is 'time_space'" in n
                   and "ViViTM3's own default is 'space_time'" in n
                   for n in notes), notes
    assert any("classifier 'gap'" in n for n in notes) == (not token)
    ref = reference_logits(tree, video, model,
                           kw.get('attention_order', 'time_space'))
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_model2_msgpack_train_state_matches_reference(tmp_path,
                                                      save_flax_msgpack):
    tree = make_tree(2)
    save_flax_msgpack(train_state(tree), tmp_path / 'checkpoint_7')
    save_flax_msgpack(train_state(make_tree(2, seed=1)),
                      tmp_path / 'checkpoint_3')  # older step: ignored
    cfg, notes = convert_scenic_checkpoint(str(tmp_path), tmp_path / 'm.pth',
                                           tmp_path / 'm.py')
    assert notes == []  # CLS tokens: nothing to assume
    bb = cfg['model']['backbone']
    assert (bb['type'], bb['num_temporal_layers'], bb['num_frames'],
            bb['img_size']) == ('ViViTM2', 2, T, IMG)
    x, video = video_pair(1)
    ours, _ = ours_logits(tmp_path / 'm.py', tmp_path / 'm.pth', x)
    torch.testing.assert_close(ours, reference_logits(tree, video, 2),
                               atol=1e-4, rtol=1e-4)


def test_model2_average_pool_baseline_and_gap(tmp_path):
    tree = make_tree(2, token=False, temporal_layers=0)
    save_npz(tree, tmp_path / 'p.npz')
    cfg, _ = convert_scenic_checkpoint(str(tmp_path / 'p.npz'),
                                       tmp_path / 'm.pth', tmp_path / 'm.py',
                                       num_frames=T)
    bb = cfg['model']['backbone']
    assert (bb['num_temporal_layers'], bb['pooling']) == (0, 'gap')
    x, video = video_pair(2)
    ours, _ = ours_logits(tmp_path / 'm.py', tmp_path / 'm.pth', x)
    torch.testing.assert_close(ours, reference_logits(tree, video, 2),
                               atol=1e-4, rtol=1e-4)


def test_uniform_frame_sampling_tokeniser(tmp_path):
    tree = make_tree(1, uniform=True)
    bb = scenic_to_vivit(flat(tree), img_size=IMG).backbone
    assert (bb['tokenizer'], bb['tubelet_size'], bb['num_frames']) == (
        'uniform', 1, T)
    save_npz(tree, tmp_path / 'p.npz')
    convert_scenic_checkpoint(str(tmp_path / 'p.npz'), tmp_path / 'm.pth',
                              tmp_path / 'm.py', img_size=IMG)
    x, video = video_pair(3)
    ours, _ = ours_logits(tmp_path / 'm.py', tmp_path / 'm.pth', x)
    torch.testing.assert_close(ours, reference_logits(tree, video, 1),
                               atol=1e-4, rtol=1e-4)


def test_find_params_and_detection():
    tree = make_tree(1)
    state = flat(train_state(tree))
    params = find_params({k: np.asarray(v) for k, v in state.items()})
    assert set(params) == set(flat(tree))
    assert detect_scenic_model(params) == 1
    assert detect_scenic_model(flat(make_tree(2))) == 2
    assert detect_scenic_model(flat(make_tree(3, token=False))) == 3
    assert detect_scenic_model(flat(make_tree(4, token=False))) is None


def test_clear_errors():
    with pytest.raises(ValueError, match='embedding/kernel'):
        find_params({'foo/bar': np.zeros(2)})
    with pytest.raises(ValueError, match='Unknown scenic ViViT layout'):
        detect_scenic_model({'embedding/kernel': np.zeros(1),
                             'Transformer/encoderblock_0/Attn/kernel': 0})
    with pytest.raises(ValueError, match='model=1 or model=4'):
        scenic_to_vivit(flat(make_tree(4, token=False)), img_size=IMG)
    with pytest.raises(ValueError, match='parameter names are those of '
                       'Model 2'):
        scenic_to_vivit(flat(make_tree(2)), model=1)
    with pytest.raises(ValueError, match='no CLS token'):
        scenic_to_vivit(flat(make_tree(1)), model=4, img_size=IMG)
    with pytest.raises(ValueError, match='Config/weights mismatch'):
        scenic_to_vivit(flat(make_tree(1)), img_size=40)  # 25 tokens/frame
    with pytest.raises(ValueError, match='Config/weights mismatch'):
        scenic_to_vivit(flat(make_tree(1)), img_size=IMG, num_frames=8)
    with pytest.raises(ValueError, match='Config/weights mismatch'):
        scenic_to_vivit(flat(make_tree(2)), num_frames=8)
    params = flat(make_tree(1))
    del params['Transformer/encoderblock_1/LayerNorm_1/scale']
    with pytest.raises(ValueError, match='has no parameter .*LayerNorm_1'):
        scenic_to_vivit(params, img_size=IMG)
    params = flat(make_tree(1))
    params['pre_logits/kernel'] = np.zeros((D, D), np.float32)
    with pytest.raises(ValueError, match='pre_logits'):
        scenic_to_vivit(params, img_size=IMG)
    params = flat(make_tree(1))
    params['Transformer/extra/kernel'] = np.zeros((D, D), np.float32)
    with pytest.raises(ValueError, match='does not know'):
        scenic_to_vivit(params, img_size=IMG)
    params = flat(make_tree(1))
    del params['Transformer/posembed_input/pos_embedding']
    with pytest.raises(ValueError, match='learned'):
        scenic_to_vivit(params, img_size=IMG)


# ------------------------------------------------------------ classifier
@pytest.mark.parametrize('model', [1, 2, 3, 4])
def test_tree_without_cls_token_converts_as_gap(model):
    """scenic's default classifier 'gap' is assumed, and the notes say so;
    classifier='gap' gives the same model without that note."""
    params = flat(make_tree(model, token=False))
    kw = dict(model=model) if model in (1, 4) else {}
    assumed = scenic_to_vivit(params, img_size=IMG, **kw)
    assert assumed.backbone['pooling'] == 'gap'
    assert any("classifier 'gap' (global average pooling) assumed" in n
               and 'no CLS token' in n for n in assumed.notes), assumed.notes
    given = scenic_to_vivit(params, img_size=IMG, classifier='gap', **kw)
    assert given.backbone == assumed.backbone
    assert not any('classifier' in n for n in given.notes)
    assert given.state_dict.keys() == assumed.state_dict.keys()
    assert all(torch.equal(given.state_dict[k], v)
               for k, v in assumed.state_dict.items())


def test_tree_with_cls_token_is_the_token_classifier():
    params = flat(make_tree(1))
    assumed = scenic_to_vivit(params, img_size=IMG)
    assert assumed.backbone['pooling'] == 'token' and assumed.notes == []
    given = scenic_to_vivit(params, img_size=IMG, classifier='token')
    assert given.backbone == assumed.backbone
    with pytest.raises(ValueError, match="classifier='gap', but the tree has "
                       'CLS token'):
        scenic_to_vivit(params, img_size=IMG, classifier='gap')


@pytest.mark.parametrize('classifier', ['gmp', 'gsp', '0'])
def test_unsupported_classifiers_are_refused_by_name(classifier):
    with pytest.raises(ValueError, match=re.escape(
            f'scenic classifier {classifier!r}') + '.*has no vivit_mm '
            'pooling'):
        scenic_to_vivit(flat(make_tree(3, token=False)), img_size=IMG,
                        classifier=classifier)


def test_token_classifier_needs_a_cls_token():
    with pytest.raises(ValueError, match="classifier='token', but the tree "
                       'has no CLS token'):
        scenic_to_vivit(flat(make_tree(1, token=False)), model=1,
                        img_size=IMG, classifier='token')


# ------------------------------------------------------------------- CLI
def converter_cli():
    """tools/convert/scenic_to_vivit.py as a module (in-process runs are
    faster than a second interpreter)."""
    sys.path.insert(0, str(REPO / 'tools/convert'))
    try:
        import scenic_to_vivit as cli
    finally:
        sys.path.pop(0)
    return cli


def test_cli_prints_notes_and_takes_the_classifier(tmp_path, capsys):
    save_npz(make_tree(3, token=False), tmp_path / 'm3.npz')
    cli = converter_cli()

    def run(*extra):
        out = [str(tmp_path / 'm.pth'), '--out-config', str(tmp_path / 'm.py')]
        rc = cli.main([str(tmp_path / 'm3.npz'), *out, '--img-size', str(IMG),
                       *extra])
        return rc, capsys.readouterr()

    def printed_and_saved_notes(out):
        printed = [line[len('note: '):] for line in out.splitlines()
                   if line.startswith('note: ')]
        saved = torch.load(tmp_path / 'm.pth', weights_only=True)['meta']
        return printed, saved['notes']

    rc, out = run()
    assert rc == 0, out.err
    notes, saved = printed_and_saved_notes(out.out)
    assert notes == saved and len(notes) == 2, out.out
    assert any("classifier 'gap'" in n for n in notes)
    assert any("attention_order='time_space'" in n for n in notes)

    rc, out = run('--classifier', 'gap', '--attention-order', 'space_time')
    assert rc == 0, out.err
    notes, saved = printed_and_saved_notes(out.out)
    assert notes == saved and len(notes) == 1, out.out
    assert notes[0].startswith("attention_order='space_time'")

    (tmp_path / 'm.pth').unlink()
    rc, out = run('--classifier', 'gmp')
    assert rc == 1
    assert "error: scenic classifier 'gmp'" in out.err
    assert not (tmp_path / 'm.pth').exists()


def test_cli_writes_label_names(tmp_path, capsys, save_flax_msgpack):
    save_flax_msgpack(train_state(make_tree(2)), tmp_path / 'checkpoint')
    labels = tmp_path / 'labels.txt'
    labels.write_text(''.join(f'class {i}\n' for i in range(CLASSES)))
    out = subprocess.run(
        [sys.executable, str(REPO / 'tools/convert/scenic_to_vivit.py'),
         str(tmp_path / 'checkpoint'), str(tmp_path / 'm.pth'),
         '--out-config', str(tmp_path / 'm.py'), '--label-map', str(labels),
         '--spatial-crops', '1', '--frame-interval', '1'],
        capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'ViViTM2' in out.stdout
    from mmengine.config import Config
    cfg = Config.fromfile(str(tmp_path / 'm.py'))
    assert cfg.label_names == [f'class {i}' for i in range(CLASSES)]
    assert cfg.test_pipeline[2]['type'] == 'CenterCrop'
    assert cfg.test_pipeline[1]['scale'] == (-1, 37)  # 32 * 256 / 224
    assert cfg.test_pipeline[0]['transforms'][1]['frame_interval'] == 1
    ckpt = torch.load(tmp_path / 'm.pth', weights_only=True)
    assert ckpt['meta']['dataset_meta']['classes'][0] == 'class 0'

    # The error path, in-process (a second interpreter start is slow).
    assert converter_cli().main([
        str(tmp_path / 'checkpoint'), str(tmp_path / 'x.pth'),
        '--out-config', str(tmp_path / 'x.py'), '--model', '3']) == 1
    assert 'error: model=3 was given' in capsys.readouterr().err
    assert not (tmp_path / 'x.pth').exists()
