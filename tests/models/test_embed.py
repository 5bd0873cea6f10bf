"""The two tokenisers (paper section 3.2): tubelet embedding and uniform
frame sampling, checked against explicit tubes and against each other."""
import copy

import torch

from tests.models.conftest import build, video
from vivit_mm.models import ViViTM1


def test_tubelet_tokens_are_time_major(tiny_cfg):
    """Token index = t_idx * (n_h * n_w) + h_idx * n_w + w_idx."""
    model = build(ViViTM1, tiny_cfg)
    embed = model.patch_embed
    x = torch.zeros(1, 3, 8, 32, 32)
    base = embed(x)  # [1, n_t, n_s, D]
    t, h, w = 2, 1, 3  # tubelet (frames 4-5), patch row 1, column 3
    x[:, :, 2 * t:2 * t + 2, 8 * h:8 * h + 8, 8 * w:8 * w + 8] = 1.0
    changed = (embed(x) - base).abs().sum(-1).flatten()  # time-major flat
    assert changed.nonzero().flatten().tolist() == [t * 16 + h * 4 + w]


def test_tubelet_embedding_is_a_linear_map_of_each_tube(tiny_cfg):
    model = build(ViViTM1, tiny_cfg)
    x = video(tiny_cfg, batch=1)
    conv = model.patch_embed.projection
    # Explicit tubes: [n_t, n_h, n_w, C * t * p * p], ordered as the filter.
    tubes = x[0].reshape(3, 4, 2, 4, 8, 4, 8).permute(1, 3, 5, 0, 2, 4, 6)
    ref = tubes.reshape(64, -1) @ conv.weight.reshape(32, -1).T + conv.bias
    torch.testing.assert_close(model.patch_embed(x)[0].reshape(64, 32), ref,
                               rtol=1e-5, atol=1e-5)


def test_uniform_frame_sampling_equals_tubelets_of_one_frame(tiny_cfg):
    uniform = build(ViViTM1, tiny_cfg, tokenizer='uniform', tubelet_size=1)
    tubelet = build(ViViTM1, tiny_cfg, tubelet_size=1)
    assert uniform.patch_embed.projection.weight.dim() == 4  # 2D filter
    state = copy.deepcopy(uniform.state_dict())
    state['patch_embed.projection.weight'] = \
        state['patch_embed.projection.weight'].unsqueeze(2)
    tubelet.load_state_dict(state)
    x = video(tiny_cfg)
    torch.testing.assert_close(uniform(x), tubelet(x))
