"""Attention maps come from the model's own attention modules, and the
rollout is right where the answer is known.

* Recording is exact: under :func:`record_attention` a module's output is
  unchanged, and its recorded probabilities, written as full ``N x N``
  matrices, reproduce that output (``A @ V``) for joint, spatial, temporal
  and Model 4's split heads.
* A static clip through an inflated Model 1 (``pooling='gap'``) or Model 3
  gives the image ViT's rollout once summed over time: duplicated keys do
  not change a softmax average. The image side is computed here from
  mmpretrain's own ViT modules.
"""
import pytest
import torch

from tests.test_inflation import (ARCH, TOKENISERS, image_sd, image_vit,
                                  static_clip, vivit)
from vivit_mm import inflate_image_weights
from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4
from vivit_mm.models.utils.attention import MultiheadSelfAttention
from vivit_mm.visualization import (attention_maps, full_attention,
                                    object_mass_ratio, record_attention,
                                    rollout)

GRID = (3, 4)  # (n_t, n_s)


@pytest.mark.parametrize('axes', [('all', ), ('space', ), ('time', ),
                                  ('time', 'space'), ('space', 'time')])
def test_recorded_attention_reproduces_the_module(axes):
    torch.manual_seed(0)
    m = MultiheadSelfAttention(16, 4, head_axes=axes, grid=GRID).eval()
    x = torch.randn(2, GRID[0] * GRID[1], 16)
    with torch.no_grad():
        fused = m(x)  # fused SDPA, not recording
        m.recorded = []
        recorded_out = m(x)
        records, m.recorded = m.recorded, None
        full = full_attention(records, GRID)  # [B, heads, N, N]
        v = m.qkv(x).reshape(2, -1, 3, 4, 4)[:, :, 2].transpose(1, 2)
        y = (full @ v).transpose(1, 2).reshape(2, -1, 16)
    torch.testing.assert_close(recorded_out, fused, atol=1e-6, rtol=0)
    torch.testing.assert_close(m.proj(y), fused, atol=1e-6, rtol=0)
    assert full.shape == (2, 4, 12, 12)
    torch.testing.assert_close(full.sum(-1), torch.ones(2, 4, 12))
    # Each head attends only where its axis allows (time-major t * n_s + s).
    t, s = torch.arange(12) // GRID[1], torch.arange(12) % GRID[1]
    allowed = {'all': torch.ones(12, 12, dtype=torch.bool),
               'space': t[:, None] == t[None],
               'time': s[:, None] == s[None]}
    for h in range(4):
        axis = axes[h // (4 // len(axes))]
        assert (full[:, h][:, ~allowed[axis]] == 0).all()
        assert (full[:, h][:, allowed[axis]] > 0).all()


def small(cls, **kw):
    model = cls(arch=ARCH, img_size=32, patch_size=8, num_frames=4,
                tubelet_size=2, **kw)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('cls, kw', [
    (ViViTM1, dict(pooling='token')), (ViViTM1, dict(pooling='gap')),
    (ViViTM2, dict(pooling='token')), (ViViTM2, dict(pooling='gap')),
    (ViViTM2, dict(num_temporal_layers=0)),
    (ViViTM3, {}), (ViViTM3, dict(attention_order='time_space')),
    (ViViTM4, {}),
])
def test_maps_of_every_variant(cls, kw):
    model = small(cls, **kw)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = model(x)
        with record_attention(model) as rec:
            got = model(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    for m in model.modules():  # back to the fused path, nothing kept
        if isinstance(m, MultiheadSelfAttention):
            assert m.recorded is None
    maps = attention_maps(rec)
    assert maps.rollout.shape == (2, 2, 4, 4)
    assert (maps.rollout >= 0).all()
    total = maps.rollout.flatten(1).sum(1)
    if model.pooling == 'gap':  # mean rows of row-stochastic products
        torch.testing.assert_close(total, torch.ones(2))
        assert maps.cls_attention is None and set(maps.method) == {'rollout'}
    else:  # the CLS token keeps part of the mass
        assert ((0 < total) & (total < 1)).all()
        assert maps.cls_attention.shape == (2, 2, 4, 4)
        assert 'CLS' in maps.method['cls_attention']
    # The maps depend on the input.
    with torch.no_grad(), record_attention(model) as rec2:
        model(torch.randn(2, 3, 4, 32, 32))
    assert (attention_maps(rec2).rollout - maps.rollout).abs().max() > 1e-4


def test_rollout_composes_factorised_attention_in_order():
    """Model 3: the rollout is the product over blocks of (I + A)/2 for the
    spatial then the temporal attention; reversing the order changes it."""
    model = small(ViViTM3)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad(), record_attention(model, keep_heads=True) as rec:
        model(x)
    layers = rec.layers()
    assert [len(b) for b in layers] == [2, 2]  # space, time per block
    eye = torch.eye(32)
    manual = eye
    for block in layers:
        for a in block:
            manual = (0.5 * a.mean(1) + 0.5 * eye) @ manual
    torch.testing.assert_close(rollout(layers), manual)
    swapped = rollout([b[::-1] for b in layers])
    assert (swapped - manual).abs().max() > 1e-6


def image_rollout(vit, frame):
    """Rollout of mmpretrain's ViT (no CLS token), from its own modules:
    the normed input of each attention, its qkv projection and scale."""
    inputs = []
    hooks = [layer.attn.register_forward_pre_hook(
        lambda mod, args: inputs.append((mod, args[0])))
        for layer in vit.layers]
    with torch.no_grad():
        vit(frame)
        result = None
        for attn, x in inputs:
            B, N, _ = x.shape
            qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, -1)
            q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
            scale = attn.head_dims**-0.5  # SDPA's default, as mmpretrain
            a = ((q @ k.transpose(-2, -1)) * scale).softmax(-1).mean(1)
            a = 0.5 * a + 0.5 * torch.eye(N)
            result = a if result is None else a @ result
    for h in hooks:
        h.remove()
    return result.mean(dim=1)  # gap: the mean over output tokens


@pytest.mark.parametrize('cls, kw', [
    (ViViTM1, dict(pooling='gap')),
    (ViViTM3, dict(attention_order='space_time')),
    (ViViTM3, dict(attention_order='time_space')),
])
@pytest.mark.parametrize('tokeniser', ['uniform', 'central_frame'])
def test_static_clip_rollout_summed_over_time_is_the_image_rollout(
        cls, kw, tokeniser):
    vit = image_vit(cls=False)
    model = vivit(cls, **kw, **TOKENISERS[tokeniser])
    init = 'central_frame' if tokeniser == 'uniform' else tokeniser
    inflate_image_weights(model, image_sd(vit), tubelet_init=init,
                          logger=None)
    frame, clip = static_clip(model.num_frames)
    with torch.no_grad(), record_attention(model) as rec:
        model(clip)
    video = attention_maps(rec).rollout  # [B, n_t, n_h, n_w]
    expected = image_rollout(vit, frame)  # [B, n_h * n_w]
    torch.testing.assert_close(video.sum(1).flatten(1), expected,
                               atol=1e-5, rtol=0)
    # Not trivially uniform: the image rollout varies over the patches.
    assert (expected.max(1).values - expected.min(1).values > 1e-3).all()
    # ... and every temporal index holds an equal share on a static clip.
    torch.testing.assert_close(video, video[:, :1].expand_as(video),
                               atol=1e-6, rtol=0)


def test_errors_and_mass_ratio():
    with pytest.raises(TypeError, match='ViViT backbone'):
        with record_attention(torch.nn.Linear(2, 2)):
            pass
    model = small(ViViTM1)
    with record_attention(model) as rec:
        pass
    with pytest.raises(RuntimeError, match='run the backbone inside'):
        attention_maps(rec)
    with torch.no_grad(), record_attention(model) as rec:
        model(torch.randn(1, 3, 4, 32, 32))
        model(torch.randn(1, 3, 4, 32, 32))
    with pytest.raises(RuntimeError, match='exactly one forward'):
        attention_maps(rec)

    heat = torch.tensor([[3.0, 1.0], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [False, False]])
    assert object_mass_ratio(heat, mask) == pytest.approx(0.75 / 0.25)
    assert object_mass_ratio(torch.ones(2, 2), mask) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='same shape'):
        object_mass_ratio(heat, mask[0])
    with pytest.raises(ValueError, match='part of the map'):
        object_mass_ratio(heat, torch.zeros(2, 2, dtype=torch.bool))


def test_upsample_puts_each_token_over_its_patch():
    from vivit_mm.visualization.overlay import normalise, upsample
    m = torch.zeros(2, 4, 4)
    m[1, 0, 3] = 1.0  # second tubelet, top row, right column
    up = upsample(m, 4, (32, 32))  # 2 frames per tubelet, 8 px patches
    assert up.shape == (4, 32, 32)
    assert up[:2].max() == 0 and up[3].equal(up[2])
    assert up[2, 3, 28] == up[2].max() == 1  # the patch centre
    assert up[2, 16:].max() == 0 and up[2, :, :16].max() == 0
    assert up[2, :8, 24:].sum() > 0.5 * up[2].sum()
    heat = normalise(up)
    assert heat.min() == 0 and heat.max() == 1
    with pytest.raises(ValueError, match='evenly'):
        upsample(m, 3, (32, 32))
