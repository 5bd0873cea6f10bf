"""Inflating an image ViT into ViViT (paper section 3.4), checked against a
real ``mmpretrain.models.VisionTransformer`` with random weights.

Equivalences: a static clip (one frame repeated) through an inflated Model 1
(``pooling='gap'``) or Model 3 gives the image model's mean token feature;
Model 2's spatial encoder is the image model per frame; Model 4 holds every
image weight. Position-embedding resizing is checked against mmpretrain's
own resize and against mmpretrain's ViT run at the new resolution.
"""
import re

import numpy as np
import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed as mmpre_resize

from tests.convert.conftest import write_hostile_checkpoint
from vivit_mm import inflate_image_weights
from vivit_mm.convert.layouts import detect_layout
from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
# mmpretrain's ViT uses exact GELU and LayerNorm eps 1e-6; ours must match
# for the equivalences (checked in _check_same_layers).
OURS = dict(arch=ARCH, patch_size=8, act_cfg=dict(type='GELU'),
            fused_attn=False)
ATOL = 1e-5


def image_vit(img_size=32, cls=True, seed=0, **kw):
    """An mmpretrain ViT whose every parameter is drawn at random (zeros in
    pos_embed/cls_token would hide mapping bugs)."""
    out_type = 'cls_token' if cls else 'raw'
    vit = VisionTransformer(arch=ARCH, img_size=img_size, patch_size=8,
                            with_cls_token=cls, out_type=out_type, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vit.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm_scale = re.search(r'ln\d\.weight$', name) is not None
            p.copy_(1 + 0.2 * noise if is_norm_scale else 0.2 * noise)
    vit.eval()  # mmpretrain's train() returns None
    return vit


def image_sd(vit, prefix='backbone.', head=True):
    sd = {prefix + k: v.clone() for k, v in vit.state_dict().items()}
    if head:
        sd['head.layers.head.weight'] = torch.randn(10, ARCH['embed_dims'])
        sd['head.layers.head.bias'] = torch.randn(10)
    return {'state_dict': sd, 'meta': {'epoch': 3}}


def vivit(cls, **kw):
    model = cls(**{**OURS, 'img_size': 32, 'num_frames': 8,
                   'tubelet_size': 2, **kw})
    model.init_weights()
    return model.eval()


def _check_same_layers(vit, model):
    ours, theirs = model.layers[0], vit.layers[0]
    assert ours.norm1.eps == theirs.ln1.eps == 1e-6
    assert ours.mlp.act.approximate == theirs.ffn.layers[0][1].approximate


def static_clip(num_frames, size=32, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    frame = torch.randn(batch, 3, size, size, generator=g)
    return frame, frame.unsqueeze(2).repeat(1, 1, num_frames, 1, 1)


TOKENISERS = {
    'central_frame': dict(tubelet_size=2, num_frames=8),
    'average': dict(tubelet_size=2, num_frames=8),
    'uniform': dict(tokenizer='uniform', tubelet_size=1, num_frames=4),
}


# ------------------------------------------------------------ equivalences
@pytest.mark.parametrize('tokeniser', list(TOKENISERS))
@pytest.mark.parametrize('cls, kw', [
    (ViViTM1, dict(pooling='gap')),
    (ViViTM3, dict(attention_order='space_time')),
    (ViViTM3, dict(attention_order='time_space')),
])
def test_static_clip_gives_image_features(cls, kw, tokeniser):
    vit = image_vit(cls=False)
    model = vivit(cls, **kw, **TOKENISERS[tokeniser])
    _check_same_layers(vit, model)
    init = 'central_frame' if tokeniser == 'uniform' else tokeniser
    inflate_image_weights(model, image_sd(vit), tubelet_init=init,
                          logger=None)
    frame, clip = static_clip(model.num_frames)
    with torch.no_grad():
        expected = vit(frame)[0].mean(dim=1)  # final-normed tokens, averaged
        got = model(clip)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    # Not trivially equal: another frame gives another feature.
    assert (model(static_clip(model.num_frames, seed=2)[1]) - got).abs() \
        .max() > 1e-2


@pytest.mark.parametrize('tokeniser', ['central_frame', 'uniform'])
def test_model2_spatial_encoder_is_the_image_model_per_frame(tokeniser):
    vit = image_vit(cls=True)
    model = vivit(ViViTM2, pooling='token', num_temporal_layers=1,
                  **TOKENISERS[tokeniser])
    inflate_image_weights(model, image_sd(vit), logger=None)
    g = torch.Generator().manual_seed(3)
    clip = torch.randn(2, 3, model.num_frames, 32, 32, generator=g)
    t = model.tubelet_size
    with torch.no_grad():
        got = model.forward_spatial(clip)  # [B, n_t, D]
        # Central-frame tubelets see frame t * k + t // 2 only.
        expected = torch.stack([vit(clip[:, :, t * k + t // 2])[0]
                                for k in range(model.num_temporal_tokens)],
                               dim=1)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_model4_takes_every_image_weight():
    vit = image_vit(cls=True)
    model = vivit(ViViTM4)
    report = inflate_image_weights(model, image_sd(vit), logger=None)
    ours = model.state_dict()
    names = {'ln1': 'norm1', 'ln2': 'norm2', 'ffn.layers.0.0': 'mlp.fc1',
             'ffn.layers.1': 'mlp.fc2', 'attn.qkv': 'attn.qkv',
             'attn.proj': 'attn.proj'}
    compared = 0
    for key, value in vit.state_dict().items():
        m = re.match(r'layers\.(\d+)\.(.+)\.(weight|bias)$', key)
        if m:
            target = f'layers.{m[1]}.{names[m[2]]}.{m[3]}'
        elif key.startswith('ln1.'):
            target = 'norm.' + key[4:]
        else:
            continue
        assert torch.equal(ours[target], value), target
        compared += 1
    assert compared == 2 * 6 * ARCH['num_layers'] + 2
    # pos_embed: the image grid repeated over time, CLS entry dropped.
    table = vit.pos_embed[:, 1:]
    assert torch.equal(ours['pos_embed'], table.repeat(1, 4, 1))
    assert report.new == []  # M4 has nothing the image model lacks
    assert 'backbone.cls_token' in report.unused


# --------------------------------------------------------- pos embedding
@pytest.mark.parametrize('interpolation', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('pooling', ['token', 'gap'])
def test_resolution_change_resizes_then_tiles(pooling, interpolation):
    vit = image_vit(img_size=32, cls=True)  # 4x4 grid
    model = vivit(ViViTM1, img_size=48, pooling=pooling)  # 6x6 grid, n_t=4
    report = inflate_image_weights(model, image_sd(vit),
                                   interpolation=interpolation, logger=None)
    ref = mmpre_resize(vit.pos_embed.detach(), (4, 4), (6, 6),
                       mode=interpolation, num_extra_tokens=1)
    got = model.pos_embed.detach()
    extra = int(pooling == 'token')
    assert got.shape == (1, extra + 4 * 36, 32)
    if extra:
        assert torch.equal(got[:, 0], vit.pos_embed[:, 0].detach())
    for t in range(4):  # time-major: entry t * 36 + s is spatial entry s
        torch.testing.assert_close(got[:, extra + 36 * t:extra + 36 * (t + 1)],
                                   ref[:, 1:], atol=1e-6, rtol=0)
    assert report.resized == ['pos_embed'] and 'pos_embed' in report.inflated
    assert '4x4 -> 6x6' in report.notes['pos_embed']


def test_resized_model_matches_image_model_at_new_resolution():
    """mmpretrain's ViT built at 48 px loads the 32 px weights with its own
    resize; the inflated ViViT at 48 px must agree on a static clip."""
    vit32 = image_vit(img_size=32, cls=False)
    vit48 = VisionTransformer(arch=ARCH, img_size=48, patch_size=8,
                              with_cls_token=False, out_type='raw')
    vit48.eval()
    vit48.load_state_dict(vit32.state_dict())  # resizes pos_embed (bicubic)
    model = vivit(ViViTM1, img_size=48, pooling='gap')
    inflate_image_weights(model, image_sd(vit32), logger=None)
    frame, clip = static_clip(8, size=48)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), vit48(frame)[0].mean(1),
                                   atol=ATOL, rtol=0)


def test_model2_spatial_pos_embed_is_not_tiled():
    vit = image_vit(cls=True)
    model = vivit(ViViTM2, pooling='token')
    report = inflate_image_weights(model, image_sd(vit), logger=None)
    assert torch.equal(model.pos_embed, vit.pos_embed)
    assert 'pos_embed' in report.loaded
    assert {'temporal_pos_embed', 'temporal_cls_token'} <= set(report.new)


# ---------------------------------------------------------- tubelet init
@pytest.mark.parametrize('t', [2, 3])
def test_tubelet_filters(t):
    vit = image_vit(cls=False)
    w = vit.patch_embed.projection.weight.detach()
    central = vivit(ViViTM1, pooling='gap', tubelet_size=t, num_frames=3 * t)
    inflate_image_weights(central, image_sd(vit), logger=None)
    k = central.patch_embed.projection.weight.detach()
    for i in range(t):
        assert torch.equal(k[:, :, i], w if i == t // 2 else
                           torch.zeros_like(w))
    average = vivit(ViViTM1, pooling='gap', tubelet_size=t, num_frames=3 * t)
    inflate_image_weights(average, image_sd(vit), tubelet_init='average',
                          logger=None)
    k = average.patch_embed.projection.weight.detach()
    torch.testing.assert_close(k, w.unsqueeze(2).expand_as(k) / t)
    model = vivit(ViViTM1, pooling='gap', tubelet_size=t, num_frames=3 * t)
    before = model.patch_embed.projection.weight.detach().clone()
    report = inflate_image_weights(model, image_sd(vit),
                                   tubelet_init='random', logger=None)
    assert torch.equal(model.patch_embed.projection.weight, before)
    assert 'patch_embed.projection.weight' in report.new
    assert 'backbone.patch_embed.projection.weight' in report.unused


# ------------------------------------------------------- Model 3 and 2
def test_model3_temporal_attention_options():
    vit = image_vit(cls=False)
    zeros = vivit(ViViTM3)
    qkv_before = zeros.layers[0].temporal_attn.qkv.weight.detach().clone()
    inflate_image_weights(zeros, image_sd(vit), logger=None)
    block = zeros.layers[0]
    assert not block.temporal_attn.proj.weight.any()
    assert not block.temporal_attn.proj.bias.any()
    assert torch.equal(block.temporal_attn.qkv.weight, qkv_before)
    assert torch.equal(block.temporal_norm.weight, torch.ones(32))
    # The zero branch still learns: its projection gets a gradient because
    # qkv is not zero. Were qkv zero as well, the branch would output 0 for
    # every input and no weight of it would ever get a gradient.
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator()
                       .manual_seed(4))
    zeros(clip).sum().backward()
    assert block.temporal_attn.proj.weight.grad.abs().sum() > 0
    dead = vivit(ViViTM3)
    inflate_image_weights(dead, image_sd(vit), logger=None)
    for layer in dead.layers:
        torch.nn.init.zeros_(layer.temporal_attn.qkv.weight)
        torch.nn.init.zeros_(layer.temporal_attn.qkv.bias)
    dead(clip).sum().backward()
    assert not dead.layers[0].temporal_attn.proj.weight.grad.any()
    assert not dead.layers[0].temporal_attn.qkv.weight.grad.any()

    copy = vivit(ViViTM3)
    inflate_image_weights(copy, image_sd(vit), temporal_attn_init='copy',
                          logger=None)
    for i in range(2):
        assert torch.equal(copy.layers[i].temporal_attn.qkv.weight,
                           vit.layers[i].attn.qkv.weight)
        assert torch.equal(copy.layers[i].temporal_attn.proj.bias,
                           vit.layers[i].attn.proj.bias)

    rand = vivit(ViViTM3)
    before = {k: v.clone() for k, v in rand.state_dict().items()
              if 'temporal' in k}
    inflate_image_weights(rand, image_sd(vit), temporal_attn_init='random',
                          logger=None)
    assert all(torch.equal(rand.state_dict()[k], v)
               for k, v in before.items())


def test_model2_temporal_encoder_from_image_layers():
    vit = image_vit(cls=True)
    model = vivit(ViViTM2, num_temporal_layers=1)
    report = inflate_image_weights(model, image_sd(vit),
                                   temporal_encoder_init='image', logger=None)
    assert torch.equal(model.temporal_layers[0].mlp.fc1.weight,
                       vit.layers[0].ffn.layers[0][0].weight)
    assert torch.equal(model.temporal_norm.weight, vit.ln1.weight)
    assert 'temporal_layers.0.attn.qkv.weight' in report.inflated
    deep = vivit(ViViTM2, num_temporal_layers=3)
    with pytest.raises(ValueError, match='num_temporal_layers=3'):
        inflate_image_weights(deep, image_sd(vit),
                              temporal_encoder_init='image', logger=None)


# ---------------------------------------------------------------- layouts
def timm_layout(vit):
    """Rename an mmpretrain ViT state dict to timm's names."""
    rules = [(r'patch_embed\.projection\.', 'patch_embed.proj.'),
             (r'layers\.(\d+)\.ln1\.', r'blocks.\1.norm1.'),
             (r'layers\.(\d+)\.ln2\.', r'blocks.\1.norm2.'),
             (r'layers\.(\d+)\.ffn\.layers\.0\.0\.', r'blocks.\1.mlp.fc1.'),
             (r'layers\.(\d+)\.ffn\.layers\.1\.', r'blocks.\1.mlp.fc2.'),
             (r'layers\.(\d+)\.attn\.', r'blocks.\1.attn.'),
             (r'^ln1\.', 'norm.')]
    sd = {}
    for k, v in vit.state_dict().items():
        for pattern, repl in rules:
            k = re.sub(pattern, repl, k)
        sd[k] = v.clone()
    sd['head.weight'], sd['head.bias'] = torch.randn(5, 32), torch.randn(5)
    return sd


@pytest.mark.parametrize('wrap', [True, False])
def test_timm_layout_gives_the_same_model(wrap, tmp_path):
    vit = image_vit(cls=True)
    ref = vivit(ViViTM1)
    inflate_image_weights(ref, image_sd(vit, prefix=''), logger=None)
    sd = timm_layout(vit)
    assert detect_layout(list(sd)) == 'timm'
    if wrap:
        path = tmp_path / 'timm.pth'
        torch.save({'model': sd}, path)
    else:  # as timm's weights on the HuggingFace hub
        safetensors = pytest.importorskip('safetensors.torch')
        path = tmp_path / 'model.safetensors'
        safetensors.save_file(sd, str(path))
    model = vivit(ViViTM1)
    report = inflate_image_weights(model, str(path), logger=None)
    assert report.layout == 'timm'
    assert sorted(report.unused) == ['head.bias', 'head.weight']
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def flax_layout(vit, prefix='opt/target/'):
    """The original ViT's .npz names and axes (LayerNorm_0,
    MultiHeadDotProductAttention_1, LayerNorm_2, MlpBlock_3)."""
    sd = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    H, D = ARCH['num_heads'], ARCH['embed_dims']
    out = {'cls': sd['cls_token'],
           'embedding/kernel': sd['patch_embed.projection.weight']
           .transpose(2, 3, 1, 0),  # (D, C, p, p) -> (p, p, C, D)
           'embedding/bias': sd['patch_embed.projection.bias'],
           'Transformer/posembed_input/pos_embedding': sd['pos_embed'],
           'Transformer/encoder_norm/scale': sd['ln1.weight'],
           'Transformer/encoder_norm/bias': sd['ln1.bias'],
           'head/kernel': np.zeros((D, 5), np.float32),
           'pre_logits/kernel': np.zeros((D, D), np.float32)}
    for i in range(ARCH['num_layers']):
        b, m = f'Transformer/encoderblock_{i}/', f'layers.{i}.'
        for flax_ln, ln in (('LayerNorm_0', 'ln1'), ('LayerNorm_2', 'ln2')):
            out[f'{b}{flax_ln}/scale'] = sd[f'{m}{ln}.weight']
            out[f'{b}{flax_ln}/bias'] = sd[f'{m}{ln}.bias']
        a = b + 'MultiHeadDotProductAttention_1/'
        qkv_w = sd[m + 'attn.qkv.weight'].reshape(3, D, D)
        qkv_b = sd[m + 'attn.qkv.bias'].reshape(3, H, D // H)
        for j, n in enumerate(('query', 'key', 'value')):
            out[f'{a}{n}/kernel'] = qkv_w[j].T.reshape(D, H, D // H)
            out[f'{a}{n}/bias'] = qkv_b[j]
        out[a + 'out/kernel'] = sd[m + 'attn.proj.weight'].T.reshape(
            H, D // H, D)
        out[a + 'out/bias'] = sd[m + 'attn.proj.bias']
        for dense, fc in (('Dense_0', 'ffn.layers.0.0'),
                          ('Dense_1', 'ffn.layers.1')):
            out[f'{b}MlpBlock_3/{dense}/kernel'] = sd[f'{m}{fc}.weight'].T
            out[f'{b}MlpBlock_3/{dense}/bias'] = sd[f'{m}{fc}.bias']
    return {prefix + k: np.ascontiguousarray(v) for k, v in out.items()}


def test_flax_npz_layout_gives_the_same_model(tmp_path):
    vit = image_vit(cls=True)
    ref = vivit(ViViTM3)
    inflate_image_weights(ref, image_sd(vit), logger=None)
    path = tmp_path / 'ViT-B_16.npz'
    np.savez(path, **flax_layout(vit))
    model = vivit(ViViTM3)
    before = model.state_dict()['layers.0.temporal_attn.qkv.weight'].clone()
    report = inflate_image_weights(model, str(path), logger=None)
    assert report.layout == 'flax'
    assert sorted(report.unused) == ['opt/target/cls',
                                     'opt/target/head/kernel',
                                     'opt/target/pre_logits/kernel']
    for k, v in ref.state_dict().items():
        if 'temporal_attn.qkv' not in k:  # left as initialised in both
            torch.testing.assert_close(model.state_dict()[k], v, rtol=0,
                                       atol=0, msg=k)
    assert torch.equal(model.layers[0].temporal_attn.qkv.weight, before)
    # The same tree as a scenic (flax msgpack) checkpoint folder.
    msgpack = pytest.importorskip('msgpack')

    def leaf(a):  # flax's msgpack array encoding: ext type 1
        return msgpack.ExtType(1, msgpack.packb(
            (list(a.shape), a.dtype.name, a.tobytes())))

    tree = {}
    for k, v in flax_layout(vit, prefix='optimizer/target/').items():
        *parents, name = k.split('/')
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[name] = leaf(v)
    (tmp_path / 'scenic').mkdir()
    (tmp_path / 'scenic' / 'checkpoint_7').write_bytes(msgpack.packb(tree))
    from_msgpack = vivit(ViViTM3)
    inflate_image_weights(from_msgpack, str(tmp_path / 'scenic'),
                          logger=None)
    assert torch.equal(from_msgpack.pos_embed, model.pos_embed)
    assert torch.equal(from_msgpack.layers[1].attn.qkv.weight,
                       model.layers[1].attn.qkv.weight)
    bad = flax_layout(vit, prefix='')
    bad['Transformer/encoderblock_0/LayerScale_4/scale'] = np.ones(32)
    with pytest.raises(ValueError, match='LayerScale'):
        inflate_image_weights(model, bad, logger=None)


# ----------------------------------------------------------------- errors
def _wider_vit():
    return VisionTransformer(arch=dict(ARCH, embed_dims=64), img_size=32,
                             patch_size=8)


@pytest.mark.parametrize('make, match', [
    (lambda: image_sd(_wider_vit()),
     r'Width mismatch.*backbone\.pos_embed.*embed_dims=32'),
    (lambda: image_sd(VisionTransformer(arch=dict(ARCH, num_layers=3),
                                        img_size=32, patch_size=8)),
     r'Depth mismatch.*3 blocks.*num_layers=2'),
    (lambda: image_sd(VisionTransformer(
        arch=dict(ARCH, feedforward_channels=128), img_size=32,
        patch_size=8)),
     r'Shape mismatch.*layers\.0\.mlp\.fc1\.weight \[64, 32\] <- '
     r'backbone\.layers\.0\.ffn\.layers\.0\.0\.weight \[128, 32\]'),
    (lambda: image_sd(VisionTransformer(arch=ARCH, img_size=32,
                                        patch_size=16)),
     r'Patch embedding mismatch.*backbone\.patch_embed\.projection\.weight'),
    (lambda: image_sd(VisionTransformer(arch=ARCH, img_size=32, patch_size=8,
                                        pre_norm=True)),
     r'cannot represent.*backbone\.pre_norm\.weight'),
    (lambda: image_sd(VisionTransformer(arch=ARCH, img_size=32, patch_size=8,
                                        layer_scale_init_value=0.1)),
     r'cannot represent.*backbone\.layers\.0\.attn\.gamma1'),
    (lambda: {'conv1.weight': torch.zeros(1)},
     'Cannot tell the layout of the image ViT checkpoint'),
    (lambda: vivit(ViViTM1).state_dict(), 'looks like a ViViT checkpoint'),
])
def test_mismatches_raise_and_leave_the_model_untouched(make, match):
    model = vivit(ViViTM1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        inflate_image_weights(model, make(), logger=None)
    assert all(torch.equal(model.state_dict()[k], v)
               for k, v in before.items())


@pytest.mark.parametrize('kwargs, match', [
    (dict(tubelet_init='inflate'), 'tubelet_init must be one of'),
    (dict(temporal_attn_init='xavier'), 'temporal_attn_init must be one of'),
    (dict(temporal_encoder_init='copy'), 'temporal_encoder_init must be'),
    (dict(interpolation='nearest'), 'interpolation must be one of'),
    (dict(image_grid=(4, )), 'image_grid'),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inflate_image_weights(vivit(ViViTM1), image_sd(image_vit()),
                              logger=None, **kwargs)


def test_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match='ViViT backbone'):
        inflate_image_weights(image_vit(), image_sd(image_vit()))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        inflate_image_weights(vivit(ViViTM1), str(tmp_path / 'missing.pth'))
    with pytest.raises(TypeError, match='path or a state dict'):
        inflate_image_weights(vivit(ViViTM1), [1, 2])


def test_hostile_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = write_hostile_checkpoint(tmp_path / 'hostile.pth', marker)
    model = vivit(ViViTM1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match='posix.system|os.system'):
        inflate_image_weights(model, str(path))
    assert not marker.exists()
    assert all(torch.equal(model.state_dict()[k], v)
               for k, v in before.items())


def test_non_square_grid_needs_image_grid():
    vit = VisionTransformer(arch=ARCH, img_size=(32, 48), patch_size=8,
                            with_cls_token=False, out_type='raw')
    model = vivit(ViViTM1, img_size=(32, 48), pooling='gap')
    with pytest.raises(ValueError, match='image_grid'):
        inflate_image_weights(model, image_sd(vit), logger=None)
    inflate_image_weights(model, image_sd(vit), image_grid=(4, 6),
                          logger=None)
    assert torch.equal(model.pos_embed[:, :24], vit.pos_embed)
