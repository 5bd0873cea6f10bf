"""``out_type`` and ``out_indices``: the default (and ``'cls_token'`` /
``'avg_featmap'``) equals the pooled feature of a forward pass written out
here from the backbone's public modules; ``'raw'``/``'featmap'`` shapes and
values, intermediate blocks, Model 2's spatial and temporal blocks, only the
blocks asked for run, and bad options are refused."""
import pytest
import torch

from tests.conftest import TINY_ARCH
from tests.models.conftest import VARIANTS, build
from vivit_mm.models import ViViTM1, ViViTM2

CFG = dict(arch=dict(TINY_ARCH), img_size=16, num_frames=4, patch_size=8,
           tubelet_size=2)
B, D, GRID = 2, 32, (2, 2, 2)


def kwargs(cls, temporal=2):
    return dict(num_temporal_layers=temporal) if cls is ViViTM2 else {}


def encoder(tokens, cls_token, pos_embed, layers, norm):
    """A ViT encoder written out: its block outputs, the last normed."""
    if cls_token is not None:
        tokens = torch.cat([cls_token.expand(len(tokens), -1, -1), tokens],
                           1)
    x, outs = tokens + pos_embed, []
    for layer in layers:
        x = layer(x)
        outs.append(x)
    outs[-1] = norm(outs[-1])
    return outs


def reference(m, x):
    """Every block output ``[B * r, extra + n, D]`` of ``m`` on ``x``,
    blocks numbered spatial first, then temporal."""
    tokens = m.patch_embed(x)  # [B, n_t, n_s, D]
    if not isinstance(m, ViViTM2):
        return encoder(tokens.flatten(1, 2), m.cls_token, m.pos_embed,
                       m.layers, m.norm)
    spatial = encoder(tokens.flatten(0, 1), m.cls_token, m.pos_embed,
                      m.layers, m.norm)
    if m.num_temporal_layers == 0:
        return spatial
    last = spatial[-1]
    frames = (last[:, 0] if m.cls_token is not None else last.mean(1))
    return spatial + encoder(frames.reshape(B, GRID[0], D),
                             m.temporal_cls_token, m.temporal_pos_embed,
                             m.temporal_layers, m.temporal_norm)


@pytest.mark.parametrize('cls, temporal', [(c, 2) for c in VARIANTS] +
                         [(ViViTM2, 0)])
def test_default_output_is_the_pooled_feature(cls, temporal):
    m = build(cls, CFG, **kwargs(cls, temporal))
    x = torch.randn(B, 3, 4, 16, 16)
    with torch.no_grad():
        last = reference(m, x)[-1]
        if last.shape[0] == B * GRID[0]:  # Model 2, average-pool baseline
            per_frame = last[:, 0] if m.pooling == 'token' else last.mean(1)
            expected = per_frame.reshape(B, GRID[0], D).mean(1)
        else:
            expected = last[:, 0] if m.pooling == 'token' else last.mean(1)
        out = m(x)
        torch.testing.assert_close(out, expected)
        assert out.shape == (B, D)
        pooled = 'cls_token' if m.pooling == 'token' else 'avg_featmap'
        assert m.out_type == pooled
        other = build(cls, CFG, **kwargs(cls, temporal), out_type=pooled,
                      out_indices=-1)
        other.load_state_dict(m.state_dict())
        torch.testing.assert_close(other(x), out, rtol=0, atol=0)
        torch.testing.assert_close(m.forward_outputs(x, out_type=pooled),
                                   out, rtol=0, atol=0)


@pytest.mark.parametrize('cls', [c for c in VARIANTS if c is not ViViTM2])
def test_raw_featmap_and_intermediate_blocks(cls):
    m = build(cls, CFG, out_type='raw', out_indices=[0, -1])
    x = torch.randn(B, 3, 4, 16, 16)
    extra = m.num_extra_tokens
    with torch.no_grad():
        ref = reference(m, x)
        first, last = m(x)
        torch.testing.assert_close(first, ref[0])  # not normed
        torch.testing.assert_close(last, ref[1])  # after the final norm
        assert last.shape == (B, extra + 8, D)
        fmap = m.forward_outputs(x, out_type='featmap', out_indices=1)
        assert fmap.shape == (B, D, *GRID)
        # featmap[b, :, t, h, w] is token t * n_h * n_w + h * n_w + w
        torch.testing.assert_close(fmap[1, :, 1, 0, 1],
                                   ref[1][1, extra + 4 + 1])
        avg = m.forward_outputs(x, out_type='avg_featmap', out_indices=(0, ))
        assert isinstance(avg, tuple) and len(avg) == 1
        torch.testing.assert_close(avg[0], ref[0][:, extra:].mean(1))


def test_model2_spatial_and_temporal_blocks():
    m = build(ViViTM2, CFG, num_temporal_layers=2)
    x = torch.randn(B, 3, 4, 16, 16)
    with torch.no_grad():
        ref = reference(m, x)  # 2 spatial, then 2 temporal
        raw = m.forward_outputs(x, out_type='raw', out_indices=[1, 3])
        # spatial block: each temporal index's tokens, its CLS first
        assert raw[0].shape == (B, GRID[0], 1 + 4, D)
        torch.testing.assert_close(raw[0], ref[1].reshape(B, GRID[0], 5, D))
        # temporal block: the CLS and one token per temporal index
        assert raw[1].shape == (B, 1 + GRID[0], D)
        torch.testing.assert_close(raw[1], ref[3])
        fmap = m.forward_outputs(x, out_type='featmap', out_indices=[1, 2])
        assert fmap[0].shape == (B, D, *GRID)
        assert fmap[1].shape == (B, D, GRID[0], 1, 1)
        torch.testing.assert_close(
            fmap[0].permute(0, 2, 3, 4, 1).reshape(B * GRID[0], 4, D),
            ref[1][:, 1:])
        # pooled at a spatial block: averaged over the temporal indices
        cls = m.forward_outputs(x, out_type='cls_token', out_indices=1)
        torch.testing.assert_close(
            cls, ref[1][:, 0].reshape(B, GRID[0], D).mean(1))


def test_only_the_blocks_asked_for_run():
    m = build(ViViTM2, CFG, num_temporal_layers=2)
    ran = []
    for name, layer in m.named_children():
        if name in ('layers', 'temporal_layers'):
            for i, block in enumerate(layer):
                block.register_forward_hook(
                    lambda *a, n=f'{name}.{i}': ran.append(n))
    with torch.no_grad():
        m.forward_outputs(torch.randn(1, 3, 4, 16, 16), out_indices=0)
    assert ran == ['layers.0']
    ran.clear()
    with torch.no_grad():
        m(torch.randn(1, 3, 4, 16, 16))
    assert ran == ['layers.0', 'layers.1', 'temporal_layers.0',
                   'temporal_layers.1']


@pytest.mark.parametrize('cls, kw, match', [
    (ViViTM1, dict(out_type='tokens'), 'out_type must be None or one of'),
    (VARIANTS[2], dict(out_type='cls_token'),
     "out_type='cls_token' needs pooling='token'"),
    (ViViTM1, dict(out_indices=2), r'out_indices must be .* in \[-2, 1\]'),
    (ViViTM1, dict(out_indices=[]), 'out_indices'),
    (ViViTM2, dict(out_indices=-5, num_temporal_layers=2),
     r'in \[-4, 3\]'),
])
def test_bad_output_options(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**CFG, **kw)
