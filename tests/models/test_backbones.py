"""Behaviour of the four ViViT backbones, checked against references that
are written out in the tests (not against the implementation itself)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from torch import nn

from tests.models.conftest import VARIANTS, build, video
from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4
from vivit_mm.models.utils import TransformerBlock


# ------------------------------------------------------------------ options
@pytest.mark.parametrize('cls', VARIANTS)
def test_registered_and_forward_shape(cls, tiny_cfg):
    model = MODELS.build(dict(type=cls.__name__, **tiny_cfg))
    assert type(model) is cls
    assert model(video(tiny_cfg)).shape == (2, 32)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_frames=7), 'num_frames .* divisible by tubelet_size'),
    (dict(img_size=36), 'img_size .* divisible by patch_size'),
    (dict(arch='xl'), 'Unknown arch'),
    (dict(arch=dict(embed_dims=32, num_layers=2)), 'missing'),
    (dict(tokenizer='conv'), 'Unknown tokenizer'),
    (dict(tokenizer='uniform'), "tokenizer='uniform'.*tubelet_size=1"),
    (dict(pooling='cls'), 'pooling'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(num_frames=0), 'num_frames must be a positive int'),
    (dict(with_cp='yes'), 'with_cp must be True or False'),
    (dict(fused_attn=1), 'fused_attn must be True or False'),
])
@pytest.mark.parametrize('cls', VARIANTS)
def test_bad_options_raise_value_error(cls, kwargs, match, tiny_cfg):
    with pytest.raises(ValueError, match=match):
        cls(**{**tiny_cfg, **kwargs})


@pytest.mark.parametrize('cls', [ViViTM3, ViViTM4])
def test_factorised_models_reject_cls_token(cls, tiny_cfg):
    with pytest.raises(ValueError, match="no CLS token.*pooling='gap'"):
        cls(**tiny_cfg, pooling='token')
    assert cls(**tiny_cfg).pooling == 'gap'


def test_model4_needs_even_heads(tiny_cfg):
    arch = dict(embed_dims=30, num_layers=1, num_heads=3,
                feedforward_channels=16)
    with pytest.raises(ValueError, match='num_heads must be even'):
        ViViTM4(**{**tiny_cfg, 'arch': arch})


def test_model2_and_model3_options(tiny_cfg):
    with pytest.raises(ValueError, match='num_temporal_layers'):
        ViViTM2(**tiny_cfg, num_temporal_layers=-1)
    with pytest.raises(ValueError, match='attention_order'):
        ViViTM3(**tiny_cfg, attention_order='diagonal')


def test_default_poolings(tiny_cfg):
    assert ViViTM1(**tiny_cfg).pooling == 'token'
    assert ViViTM2(**tiny_cfg).pooling == 'token'
    gap = ViViTM1(**tiny_cfg, pooling='gap')
    assert gap.cls_token is None
    assert gap.pos_embed.shape == (1, 4 * 16, 32)
    assert ViViTM1(**tiny_cfg).pos_embed.shape == (1, 4 * 16 + 1, 32)


@pytest.mark.parametrize('cls', VARIANTS)
def test_wrong_input_shape_says_what_to_fix(cls, tiny_cfg):
    model = cls(**tiny_cfg)
    with pytest.raises(ValueError, match=r'\[B, 3, 8, 32, 32\].*num_frames'):
        model(torch.randn(1, 3, 4, 32, 32))


# ------------------------------------------------------------ equivalences
def _image_block(block):
    """A plain ViT block holding a Model 3 block's spatial weights."""
    attn = block.attn
    image = TransformerBlock(attn.embed_dims, attn.num_heads,
                             block.mlp.fc1.out_features)
    image.load_state_dict(block.state_dict(), strict=False)
    return image.eval()


@pytest.mark.parametrize('order', ['space_time', 'time_space'])
def test_model3_without_temporal_attention_is_per_frame_vit(order, tiny_cfg):
    model = build(ViViTM3, tiny_cfg, attention_order=order)
    for block in model.layers:
        torch.nn.init.zeros_(block.temporal_attn.proj.weight)
        torch.nn.init.zeros_(block.temporal_attn.proj.bias)
    x = video(tiny_cfg)
    tokens = model.patch_embed(x) + model.pos_embed.reshape(1, 4, 16, 32)
    frames = tokens.flatten(0, 1)  # [B * n_t, n_s, D]: frame by frame
    for block in model.layers:
        frames = _image_block(block)(frames)
    ref = model.norm(frames).reshape(2, -1, 32).mean(1)
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_model2_spatial_encoder_sees_only_its_own_frames(tiny_cfg):
    model = build(ViViTM2, tiny_cfg)
    x = video(tiny_cfg, batch=1)
    y = x.clone()
    y[:, :, 2:4] += 1.0  # frames 2-3: tubelet (temporal index) 1
    a, b = model.forward_spatial(x), model.forward_spatial(y)
    assert a.shape == (1, 4, 32)
    changed = (a - b).abs().amax(-1)[0]
    assert changed[1] > 1e-4
    torch.testing.assert_close(a[:, [0, 2, 3]], b[:, [0, 2, 3]])
    # ... and the temporal encoder mixes them.
    assert (model(x) - model(y)).abs().max() > 1e-4


def test_model2_spatial_encoder_is_a_vit_per_frame(tiny_cfg):
    """Reference: a plain ViT (CLS, n_s + 1 position entries shared by all
    frames) applied to each temporal index, then the temporal encoder."""
    model = build(ViViTM2, tiny_cfg)
    x = video(tiny_cfg)
    tokens = model.patch_embed(x).flatten(0, 1)  # [B * n_t, n_s, D]
    cls = model.cls_token.expand(tokens.shape[0], -1, -1)
    f = torch.cat([cls, tokens], 1) + model.pos_embed
    for block in model.layers:
        f = block(f)
    frames = model.norm(f)[:, 0].reshape(2, 4, 32)
    t = torch.cat([model.temporal_cls_token.expand(2, -1, -1), frames], 1)
    t = t + model.temporal_pos_embed
    for block in model.temporal_layers:
        t = block(t)
    torch.testing.assert_close(model(x), model.temporal_norm(t)[:, 0])


def test_model2_average_pool_baseline(tiny_cfg):
    model = build(ViViTM2, tiny_cfg, num_temporal_layers=0)
    assert not hasattr(model, 'temporal_layers')
    x = video(tiny_cfg)
    torch.testing.assert_close(model(x), model.forward_spatial(x).mean(1))


def test_model1_is_a_vit_over_all_tokens(tiny_cfg):
    model = build(ViViTM1, tiny_cfg)
    x = video(tiny_cfg)
    tokens = model.patch_embed(x).flatten(1, 2)
    z = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1)
    z = z + model.pos_embed
    for block in model.layers:
        # explicit pre-LN block with one joint attention over 65 tokens
        attn = block.attn
        y = block.norm1(z)
        q, k, v = attn.qkv(y).reshape(2, 65, 3, 4, 8).permute(2, 0, 3, 1, 4)
        a = F.softmax(q @ k.transpose(-2, -1) / 8**0.5, -1) @ v
        z = z + attn.proj(a.transpose(1, 2).reshape(2, 65, 32))
        z = z + block.mlp.fc2(F.gelu(block.mlp.fc1(block.norm2(z)),
                                     approximate='tanh'))
    torch.testing.assert_close(model(x), model.norm(z)[:, 0], rtol=1e-5,
                               atol=1e-5)


def test_default_activation_and_norm_are_the_official_ones(tiny_cfg):
    block = ViViTM1(**tiny_cfg).layers[0]
    assert isinstance(block.mlp.act, torch.nn.GELU)
    assert block.mlp.act.approximate == 'tanh'
    assert block.norm1.eps == 1e-6
    exact = ViViTM1(**tiny_cfg, act_cfg=dict(type='GELU')).layers[0]
    assert exact.mlp.act.approximate == 'none'


# ------------------------------------------------------ regularisation etc.
def test_drop_path_rates_rise_linearly_per_layer(tiny_cfg):
    arch = dict(embed_dims=32, num_layers=5, num_heads=4,
                feedforward_channels=64)
    model = ViViTM2(**{**tiny_cfg, 'arch': arch}, drop_path_rate=0.4,
                    num_temporal_layers=3)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0) for b in model.layers]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert isinstance(model.layers[0].drop_path, torch.nn.Identity)
    t_rates = [getattr(b.drop_path, 'drop_prob', 0.0)
               for b in model.temporal_layers]
    assert t_rates == pytest.approx([0.0, 0.2, 0.4])


def test_dropouts_are_wired(tiny_cfg):
    model = ViViTM1(**tiny_cfg, drop_rate=0.1, attn_drop_rate=0.2)
    block = model.layers[0]
    assert model.drop_after_pos.p == 0.1
    assert block.attn.attn_drop == 0.2 and block.attn.proj_drop.p == 0.1
    assert block.mlp.drop.p == 0.1
    x = video(tiny_cfg)
    model.train()
    assert not torch.equal(model(x), model(x))  # stochastic in training
    model.eval()
    torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize('cls', VARIANTS)
@pytest.mark.parametrize('tokenizer', ['tubelet', 'uniform'])
def test_gradients_reach_the_input(cls, tokenizer, tiny_cfg):
    t = 1 if tokenizer == 'uniform' else 2
    model = build(cls, tiny_cfg, tokenizer=tokenizer, tubelet_size=t)
    x = video(tiny_cfg).requires_grad_()
    model(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # every frame receives gradient
    assert (x.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).all()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize('cls', VARIANTS)
def test_activation_checkpointing_matches(cls, tiny_cfg):
    ref = build(cls, tiny_cfg).train()
    cp = cls(**tiny_cfg, with_cp=True).train()
    cp.load_state_dict(ref.state_dict())
    x = video(tiny_cfg)
    out_ref, out_cp = ref(x), cp(x)
    torch.testing.assert_close(out_ref, out_cp)
    out_ref.sum().backward()
    out_cp.sum().backward()
    for (n, a), b in zip(ref.named_parameters(), cp.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)


# ---------------------------------------------------------- initialisation
#: init_cfgs that are not ``Pretrained``, each naming one kind of layer.
INIT_CFGS = {
    'trunc_normal_linear': dict(type='TruncNormal', layer='Linear', std=0.02),
    'constant_layernorm': dict(type='Constant', layer='LayerNorm', val=2,
                               bias=0.5),
}


def _initialised(cls, cfg, init_cfg, seed=0):
    model = cls(**cfg, init_cfg=copy.deepcopy(init_cfg))
    torch.manual_seed(seed)
    model.init_weights()
    return model


@pytest.mark.parametrize('init', list(INIT_CFGS))
@pytest.mark.parametrize('cls', VARIANTS)
def test_init_cfg_is_applied_after_the_default_init(cls, init, tiny_cfg):
    """An init_cfg that does not load a checkpoint still gets the default
    initialisation first: position tables N(0, 0.02) (all of them: Model 2
    has two), CLS tokens zero, and every layer it does not name as the
    default makes it; the layers it names are initialised as it says."""
    default = _initialised(cls, tiny_cfg, None)
    model = _initialised(cls, tiny_cfg, INIT_CFGS[init])
    params, ref = dict(model.named_parameters()), default.state_dict()
    tables = [k for k in params if k.endswith('pos_embed')]
    assert len(tables) == (2 if cls is ViViTM2 else 1)
    for name in tables:
        table = params[name].detach()
        assert table.abs().sum() > 0, name  # not left at zero
        assert table.std().item() == pytest.approx(0.02, rel=0.25), name
        assert torch.equal(table, ref[name]), name
    tokens = [k for k in params if k.endswith('cls_token')]
    assert len(tokens) == {'token': len(tables), 'gap': 0}[model.pooling]
    for name in tokens:
        assert not params[name].any() and torch.equal(params[name],
                                                      ref[name]), name
    named = nn.Linear if init == 'trunc_normal_linear' else nn.LayerNorm
    defaults = dict(default.named_modules())
    checked = 0
    for name, m in model.named_modules():
        if isinstance(m, named) and named is nn.Linear:
            assert m.weight.std().item() == pytest.approx(0.02, rel=0.25)
            assert not m.bias.any(), name
            checked += 1
        elif isinstance(m, named):
            assert torch.equal(m.weight, torch.full_like(m.weight, 2.0))
            assert torch.equal(m.bias, torch.full_like(m.bias, 0.5))
            checked += 1
        elif isinstance(m, (nn.Linear, nn.LayerNorm, nn.Conv2d, nn.Conv3d)):
            for k, v in m.state_dict().items():
                assert torch.equal(v, defaults[name].state_dict()[k]), \
                    f'{name}.{k}'
    assert checked > 0


@pytest.mark.parametrize('cls', VARIANTS)
def test_pretrained_init_cfg_loads_the_checkpoint(cls, tiny_cfg, tmp_path):
    src = build(cls, tiny_cfg)  # random position tables and CLS tokens
    path = tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=src.state_dict()), path)
    model = cls(**tiny_cfg, init_cfg=dict(type='Pretrained',
                                           checkpoint=str(path)))
    model.init_weights()
    ours = model.state_dict()
    assert ours.keys() == src.state_dict().keys()
    for k, v in src.state_dict().items():
        assert torch.equal(ours[k], v), k


# ---------------------------------------------------------- parameter count
def _expected_params(arch, cls, n_t, n_s, C=3, p=16, t=2, **kw):
    D, L, F_ = (arch['embed_dims'], arch['num_layers'],
                arch['feedforward_channels'])
    block = 4 * D * D + 4 * D + 2 * D * F_ + F_ + D + 4 * D
    embed = D * C * t * p * p + D
    if cls is ViViTM1:
        return embed + D + (n_t * n_s + 1) * D + L * block + 2 * D
    if cls is ViViTM4:
        return embed + n_t * n_s * D + L * block + 2 * D
    if cls is ViViTM3:
        return embed + n_t * n_s * D + L * (block + 4 * D * D + 6 * D) + 2 * D
    Lt = kw.get('num_temporal_layers', 4)
    temporal = (D + (n_t + 1) * D + Lt * block + 2 * D) if Lt else 0
    return embed + D + (n_s + 1) * D + L * block + 2 * D + temporal


@pytest.mark.parametrize('arch', ['b', 'l', 'h'])
@pytest.mark.parametrize('cls', VARIANTS)
def test_parameter_counts_follow_the_arch_table(arch, cls):
    with torch.device('meta'):
        model = cls(arch=arch)
    settings = cls.arch_zoo[arch]
    assert sum(p.numel() for p in model.parameters()) == _expected_params(
        settings, cls, n_t=16, n_s=196)
    assert model.num_layers == {'b': 12, 'l': 24, 'h': 32}[arch]
    assert len(model.layers) == model.num_layers
