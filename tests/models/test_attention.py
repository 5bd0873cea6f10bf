"""Multi-head self-attention of the four variants, checked against
references written out in the tests: the explicit formula, one dense
block-masked attention (Model 4) and the neighbourhoods of Model 3's two
attentions."""
import pytest
import torch

from tests.models.conftest import VARIANTS, build, video
from vivit_mm.models import ViViTM3, ViViTM4


@pytest.mark.parametrize('cls', VARIANTS)
@pytest.mark.parametrize('tokenizer', ['tubelet', 'uniform'])
def test_fused_and_explicit_attention_agree(cls, tokenizer, tiny_cfg):
    t = 1 if tokenizer == 'uniform' else 2
    fused = build(cls, tiny_cfg, tokenizer=tokenizer, tubelet_size=t)
    explicit = cls(**{**tiny_cfg, 'tubelet_size': t}, tokenizer=tokenizer,
                   fused_attn=False).eval()
    explicit.load_state_dict(fused.state_dict())
    x = video(tiny_cfg)
    torch.testing.assert_close(fused(x), explicit(x), rtol=1e-5, atol=1e-5)


def _block_masked_reference(block, x, n_t, n_s):
    """Model 4's block computed with ONE dense N x N attention per head and a
    space/time mask: heads [0, H/2) may only see tokens with their spatial
    index, heads [H/2, H) only tokens with their temporal index."""
    attn = block.attn
    B, N, D = x.shape
    H, hd = attn.num_heads, attn.head_dims
    y = block.norm1(x)
    q, k, v = (y @ attn.qkv.weight.T + attn.qkv.bias).reshape(
        B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
    idx = torch.arange(N)
    same_space = (idx[:, None] % n_s) == (idx[None, :] % n_s)
    same_time = (idx[:, None] // n_s) == (idx[None, :] // n_s)
    allowed = torch.stack([same_space] * (H // 2) + [same_time] * (H // 2))
    scores = (q @ k.transpose(-2, -1)) / hd**0.5
    scores = scores.masked_fill(~allowed, float('-inf'))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)
    x = x + attn.proj(out)
    return x + block.mlp(block.norm2(x))


def test_model4_equals_block_masked_dense_attention(tiny_cfg):
    model = build(ViViTM4, tiny_cfg)
    x = video(tiny_cfg)
    n_t, n_s = model.num_temporal_tokens, model.num_spatial_tokens
    tokens = model.patch_embed(x).flatten(1, 2) + model.pos_embed
    ref = tokens
    for block in model.layers:
        ref = _block_masked_reference(block, ref, n_t, n_s)
    ref = model.norm(ref).mean(1)
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_model3_attention_neighbourhoods(tiny_cfg):
    """Model 3's spatial attention mixes only tokens of one temporal index,
    its temporal attention only tokens of one spatial index."""
    block = build(ViViTM3, tiny_cfg).layers[0]
    x = torch.randn(1, 64, 32)
    y = x.clone()
    t, s = 1, 5
    y[:, t * 16 + s] += torch.randn(32)  # token (t, s)

    def spatial(z):
        return block.attn(block.norm1(z))

    def temporal(z):
        return block.temporal_attn(block.temporal_norm(z))

    space = (spatial(y) - spatial(x)).abs().sum(-1)
    time = (temporal(y) - temporal(x)).abs().sum(-1)
    space, time = space.reshape(4, 16) > 1e-6, time.reshape(4, 16) > 1e-6
    expected_space = torch.zeros(4, 16, dtype=torch.bool)
    expected_space[t] = True
    expected_time = torch.zeros(4, 16, dtype=torch.bool)
    expected_time[:, s] = True
    assert torch.equal(space, expected_space)
    assert torch.equal(time, expected_time)
    # One full block reaches every token (space then time).
    assert ((block(y) - block(x)).abs().sum(-1) > 1e-6).all()
