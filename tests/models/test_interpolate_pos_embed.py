"""``interpolate_pos_embed=True``: an input of another number of frames or
resolution gives, within 1e-5, the output of a backbone built for that size
that loaded the same weights through the load-time resize (all four
variants); the kept tables follow optimizer steps and loads; gradients
reach the position tables; other inputs are refused with the fix."""
import pytest
import torch

from tests.conftest import TINY_ARCH
from tests.models.conftest import VARIANTS, build
from vivit_mm.models import ViViTM2

CFG = dict(arch=dict(TINY_ARCH), img_size=16, num_frames=4, patch_size=8,
           tubelet_size=2)
# (num_frames, img_size) of the other input: more frames, fewer frames,
# a higher resolution (the load-time resize takes one change at a time for
# a joint table; Model 2's two tables take both at once).
SIZES = [(8, 16), (2, 16), (4, 24)]


def kwargs(cls):
    return dict(num_temporal_layers=2) if cls is ViViTM2 else {}


@pytest.mark.parametrize('cls, frames, size', [
    (cls, frames, size) for cls in VARIANTS for frames, size in SIZES] +
    [(ViViTM2, 8, 24)])
def test_run_time_resize_equals_load_time_resize(cls, frames, size):
    src = build(cls, CFG, **kwargs(cls), interpolate_pos_embed=True)
    ref = cls(**{**CFG, 'num_frames': frames, 'img_size': size},
              **kwargs(cls)).eval()
    ref.load_state_dict(src.state_dict())  # the load-time resize
    x = torch.randn(2, 3, frames, size, size)
    with torch.no_grad():
        expected = ref(x)
        got = src(x)
        again = src(x)  # from the kept table
        raw = src.forward_outputs(x, out_type='featmap', out_indices=0)
        raw_ref = ref.forward_outputs(x, out_type='featmap', out_indices=0)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, got, rtol=0, atol=0)
    torch.testing.assert_close(raw, raw_ref, rtol=1e-5, atol=1e-5)
    # with gradients: recomputed, and the gradient reaches the table
    out = src(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    (out * torch.randn_like(out)).sum().backward()
    assert src.pos_embed.grad is not None
    assert src.pos_embed.grad.abs().sum() > 0
    # the built size still works and is untouched
    with torch.no_grad():
        base = build(cls, CFG, **kwargs(cls))
        base.load_state_dict(src.state_dict())
        y = torch.randn(1, 3, 4, 16, 16)
        torch.testing.assert_close(src(y), base(y), rtol=0, atol=0)


@pytest.mark.parametrize('cls', VARIANTS)
def test_kept_tables_follow_steps_and_loads(cls):
    src = build(cls, CFG, **kwargs(cls), interpolate_pos_embed=True)
    x = torch.randn(1, 3, 8, 16, 16)

    def reference():
        ref = cls(**{**CFG, 'num_frames': 8}, **kwargs(cls)).eval()
        ref.load_state_dict(src.state_dict())
        return ref(x)

    with torch.no_grad():
        first = src(x)
    # an optimizer step changes the table in place
    opt = torch.optim.SGD(src.parameters(), lr=1.0)
    src(x).square().mean().backward()
    opt.step()
    with torch.no_grad():
        stepped = src(x)
        assert not torch.allclose(stepped, first)
        torch.testing.assert_close(stepped, reference(), rtol=1e-5,
                                   atol=1e-5)
        # load_state_dict copies into the table
        other = build(cls, CFG, **kwargs(cls))
        src.load_state_dict(other.state_dict())
        torch.testing.assert_close(src(x), reference(), rtol=1e-5,
                                   atol=1e-5)
    with torch.inference_mode():
        inferred = src(x)
    with torch.no_grad():  # a table kept in inference mode is reused
        torch.testing.assert_close(src(x), inferred, rtol=0, atol=0)
        # a move to another dtype (or device) is a new table
        src.double()
        out = src(x.double())
        assert out.dtype == torch.float64
        torch.testing.assert_close(out.float(), inferred, rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize('cls', VARIANTS)
def test_other_sizes_refused_with_the_fix(cls):
    strict = cls(**CFG, **kwargs(cls))
    with pytest.raises(ValueError, match='interpolate_pos_embed=True'):
        strict(torch.randn(1, 3, 8, 16, 16))
    loose = cls(**CFG, **kwargs(cls), interpolate_pos_embed=True)
    for shape in [(1, 3, 5, 16, 16), (1, 3, 4, 20, 16), (1, 1, 4, 16, 16),
                  (3, 4, 16, 16)]:
        with pytest.raises(ValueError, match=r'tubelet_size 2 and H, W by '
                           r'patch_size \(8, 8\)'):
            loose(torch.randn(*shape))
    with pytest.raises(ValueError, match='interpolate_pos_embed must be True '
                       'or False'):
        cls(**CFG, **kwargs(cls), interpolate_pos_embed='yes')
