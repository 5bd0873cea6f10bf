"""Loading a checkpoint made for another number of frames or resolution:
the position tables are resized (bicubic over space as mmpretrain does,
linear over time), never silently dropped."""
import numpy as np
import pytest
import torch
from mmaction.apis import init_recognizer
from mmengine.config import Config
from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.models.utils import resize_pos_embed as mmpretrain_resize

from tests.conftest import REPO
from vivit_mm.models.backbones import ViViTM1, ViViTM2, ViViTM3, ViViTM4
from vivit_mm.models.utils.pos_embed import (infer_token_grid,
                                             resize_pos_embed_3d,
                                             resize_pos_embed_grid,
                                             tile_pos_embed)

TINY = dict(embed_dims=32, num_layers=1, num_heads=4, feedforward_channels=64)


def randomised(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def linear_over_time(table, T):
    """Independent reference: numpy interpolation at the sample positions
    of F.interpolate(align_corners=False), per spatial index and channel."""
    t = table.shape[0]
    pos = np.clip((np.arange(T) + 0.5) * t / T - 0.5, 0, t - 1)
    flat = table.reshape(t, -1).numpy()
    out = np.stack([np.interp(pos, np.arange(t), flat[:, j])
                    for j in range(flat.shape[1])], axis=1)
    return torch.from_numpy(out).reshape(T, *table.shape[1:]).float()


def test_infer_token_grid():
    assert infer_token_grid(2 * 14 * 14, (4, 14, 14)) == (2, 14, 14)
    assert infer_token_grid(16 * 20 * 20, (16, 14, 14)) == (16, 20, 20)
    # non-square frames keep their aspect ratio
    assert infer_token_grid(2 * 6 * 9, (2, 4, 6)) == (2, 6, 9)
    # both axes changed: cannot be told apart from the length alone
    with pytest.raises(ValueError, match='Build the backbone with'):
        infer_token_grid(8 * 2 * 2, (4, 3, 3))
    # 2x14x14 and 8x7x7 hold the same 392 entries
    with pytest.raises(ValueError, match=r'fits both \(2, 14, 14\) and '
                       r'\(8, 7, 7\)'):
        infer_token_grid(392, (8, 14, 14))
    assert infer_token_grid(392, (8, 14, 14), spatial=False) == (2, 14, 14)
    assert infer_token_grid(392, (8, 14, 14), temporal=False) == (8, 7, 7)
    with pytest.raises(ValueError):
        infer_token_grid(5 * 14 * 14, (1, 14, 14), temporal=False)


def test_pos_embed_functions():
    pe = torch.randn(1, 16, 8)
    assert resize_pos_embed_grid(pe, (4, 4), (4, 4)) is pe
    assert tile_pos_embed(pe, 1) is pe
    tiled = tile_pos_embed(pe, 3)
    assert tiled.shape == (1, 48, 8)
    assert all(torch.equal(tiled[:, 16 * t:16 * (t + 1)], pe)
               for t in range(3))
    small = resize_pos_embed_grid(pe, (4, 4), (2, 3))
    assert small.shape == (1, 6, 8)
    const = torch.ones(1, 16, 8)  # resizing keeps a constant table
    torch.testing.assert_close(resize_pos_embed_grid(const, (4, 4), (7, 5)),
                               torch.ones(1, 35, 8))
    with pytest.raises(ValueError, match='interpolation'):
        resize_pos_embed_grid(pe, (4, 4), (5, 5), mode='nearest')
    with pytest.raises(ValueError, match='not the 3x3 grid'):
        resize_pos_embed_grid(pe, (3, 3), (5, 5))


def test_resize_3d_matches_mmpretrain_and_linear_time():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(1, 3 * 4 * 4, 8, generator=g)
    out = resize_pos_embed_3d(table, (3, 4, 4), (5, 6, 6))
    assert out.shape == (1, 5 * 36, 8)
    # space: each frame as mmpretrain's resize_pos_embed (bicubic)
    spatial = torch.cat([
        mmpretrain_resize(table[:, i * 16:(i + 1) * 16], (4, 4), (6, 6),
                          num_extra_tokens=0) for i in range(3)
    ]).reshape(3, 36, 8)
    torch.testing.assert_close(out.reshape(5, 36, 8),
                               linear_over_time(spatial, 5),
                               rtol=1e-5, atol=1e-5)
    assert resize_pos_embed_3d(table, (3, 4, 4), (3, 4, 4)) is table


@pytest.mark.parametrize('cls', [ViViTM1, ViViTM3, ViViTM4])
def test_joint_table_resized_on_load(cls):
    src = randomised(cls(arch=TINY, num_frames=4, img_size=32))
    state = src.state_dict()
    extra = src.num_extra_tokens
    table = state['pos_embed']
    # more frames: linear over time, CLS entry unchanged
    dst = cls(arch=TINY, num_frames=8, img_size=32)
    assert str(dst.load_state_dict(state)) == '<All keys matched successfully>'
    assert state['pos_embed'] is table  # the caller's dict is not changed
    got = dst.pos_embed.detach()
    torch.testing.assert_close(got[:, :extra], table[:, :extra])
    expected = linear_over_time(table[0, extra:].reshape(2, 4, 32), 4)
    torch.testing.assert_close(got[0, extra:].reshape(4, 4, 32), expected)
    for k, v in dst.state_dict().items():  # everything else as saved
        if k != 'pos_embed':
            torch.testing.assert_close(v, state[k])
    # higher resolution: bicubic per frame, as mmpretrain
    dst = cls(arch=TINY, num_frames=4, img_size=48)
    dst.load_state_dict(state)
    frames = table[0, extra:].reshape(2, 4, 32)
    expected = torch.cat([
        mmpretrain_resize(f[None], (2, 2), (3, 3), num_extra_tokens=0)
        for f in frames])
    torch.testing.assert_close(dst.pos_embed.detach()[0, extra:],
                               expected.reshape(-1, 32))
    dst(torch.randn(1, 3, 4, 48, 48))
    # both changed: an error, not a silently random table
    dst = cls(arch=TINY, num_frames=8, img_size=48)
    with pytest.raises(ValueError, match='Loading pos_embed of shape'):
        dst.load_state_dict(state)


def test_constant_over_time_table_stays_tiled():
    """A table tiled from one frame's (as image inflation makes it) is the
    same tiling at any number of frames; then a clip of one repeated frame
    gives the same features before and after (without a CLS token, joint
    attention over k identical copies of a frame's tokens does not depend
    on k)."""
    kw = dict(arch=TINY, img_size=32, pooling='gap')
    src = randomised(ViViTM1(num_frames=4, **kw))
    with torch.no_grad():
        frame = src.pos_embed[:, :4].clone()
        src.pos_embed.copy_(frame.repeat(1, 2, 1))
    dst = ViViTM1(num_frames=12, **kw)
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst.pos_embed.detach(), frame.repeat(1, 6, 1))
    still = torch.randn(2, 3, 1, 32, 32)
    src.eval(), dst.eval()
    with torch.no_grad():
        torch.testing.assert_close(dst(still.expand(-1, -1, 12, -1, -1)),
                                   src(still.expand(-1, -1, 4, -1, -1)),
                                   rtol=1e-4, atol=1e-4)


def test_model2_tables():
    src = randomised(ViViTM2(arch=TINY, num_frames=4, img_size=32,
                             num_temporal_layers=1))
    state = src.state_dict()
    dst = ViViTM2(arch=TINY, num_frames=8, img_size=48,
                  num_temporal_layers=1)
    dst.load_state_dict(state)  # both tables at once: they are separate
    torch.testing.assert_close(
        dst.pos_embed.detach()[:, 1:],
        mmpretrain_resize(state['pos_embed'][:, 1:], (2, 2), (3, 3),
                          num_extra_tokens=0))
    t = state['temporal_pos_embed']
    torch.testing.assert_close(dst.temporal_pos_embed.detach()[:, 0], t[:, 0])
    torch.testing.assert_close(
        dst.temporal_pos_embed.detach()[0, 1:],
        linear_over_time(t[0, 1:], 4))


def test_load_checkpoint_of_recognizer_at_other_frames(tmp_path):
    """mmengine's load_checkpoint (the path of load_from and
    init_recognizer) resizes too, where it would otherwise only warn and
    keep the random table."""
    cfg = Config.fromfile(str(REPO / 'configs/vivit_m1_k400.py'))
    cfg.model.backbone.update(arch=TINY, num_frames=4, img_size=32)
    cfg.model.cls_head.update(in_channels=32, num_classes=5)
    src = randomised(init_recognizer(cfg, None, device='cpu'))
    ckpt = tmp_path / 'm1.pth'
    save_checkpoint(dict(state_dict=src.state_dict()), str(ckpt))
    cfg.model.backbone.num_frames = 8
    dst = init_recognizer(cfg, str(ckpt), device='cpu')
    table = src.backbone.pos_embed.detach()
    torch.testing.assert_close(
        dst.backbone.pos_embed.detach()[0, 1:].reshape(4, 4, 32),
        linear_over_time(table[0, 1:].reshape(2, 4, 32), 4))
    cfg.model.backbone.update(num_frames=8, img_size=48)
    model = init_recognizer(cfg, None, device='cpu')
    with pytest.raises(ValueError, match='Cannot resize'):
        load_checkpoint(model, str(ckpt), map_location='cpu')
