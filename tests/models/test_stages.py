"""``frozen_stages`` and ``get_layer_depth`` of the four backbones: frozen
tensors get no gradient and stay bit-identical through training while the
next block changes, frozen parts stay in eval mode; every parameter's depth
follows the documented rule, agrees with mmpretrain's ViT, and rises from
the tokeniser to the head (Model 2: temporal above spatial)."""
import re

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.registry import DefaultScope

from tests.conftest import TINY_ARCH
from tests.models.conftest import VARIANTS
from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4

CFG = dict(arch=dict(TINY_ARCH), img_size=16, num_frames=4, patch_size=8,
           tubelet_size=2)


def recognizer(backbone):
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(dict(
            type='Recognizer3D', backbone=backbone,
            cls_head=dict(type='ViViTHead', num_classes=3, in_channels=32),
            data_preprocessor=dict(type='ActionDataPreprocessor',
                                   format_shape='NCTHW')))
    model.init_weights()
    return model


def train_steps(model, steps=3):
    """A few AdamW steps on random clips and labels."""
    opt = torch.optim.AdamW([p for p in model.parameters()
                             if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        x = torch.randn(2, 3, 4, 16, 16, generator=g)
        loss = torch.nn.functional.cross_entropy(
            model.cls_head(model.backbone(x)), torch.tensor([0, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize('cls, frozen, frozen_keys, trained', [
    (ViViTM1, 1, ['patch_embed.', 'cls_token', 'pos_embed', 'layers.0.'],
     'layers.1.'),
    (ViViTM3, 1, ['patch_embed.', 'pos_embed', 'layers.0.'], 'layers.1.'),
    (ViViTM4, 2, ['patch_embed.', 'pos_embed', 'layers.', 'norm.'], None),
    # Model 2: all spatial blocks and the spatial final norm; the temporal
    # encoder's CLS token and table are not frozen (its first block is not)
    (ViViTM2, 2, ['patch_embed.', 'cls_token', 'pos_embed', 'layers.',
                  'norm.'], 'temporal_layers.0.'),
    # ... one more: the temporal CLS token and table and its first block
    (ViViTM2, 3, ['patch_embed.', 'cls_token', 'pos_embed', 'layers.',
                  'norm.', 'temporal_cls_token', 'temporal_pos_embed',
                  'temporal_layers.0.'], 'temporal_layers.1.'),
])
def test_frozen_tensors_unchanged_next_block_trained(cls, frozen, frozen_keys,
                                                     trained):
    backbone = dict(type=cls.__name__, **CFG, frozen_stages=frozen,
                    drop_rate=0.1, drop_path_rate=0.2)
    if cls is ViViTM2:
        backbone['num_temporal_layers'] = 2
    model = recognizer(backbone)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    is_frozen = {k: k.startswith(tuple(frozen_keys)) for k in before}
    assert any(is_frozen.values())
    for name, p in model.backbone.named_parameters():
        assert p.requires_grad != is_frozen[name], name
    train_steps(model)
    for name, p in model.backbone.named_parameters():
        if is_frozen[name]:
            assert p.grad is None, name
            assert torch.equal(p, before[name]), name
    if trained:
        for name, p in model.backbone.named_parameters():
            if name.startswith(trained) and name.endswith('weight'):
                assert not torch.equal(p, before[name]), name
    # frozen parts stay in eval mode through model.train(), the rest trains
    model.train()
    modules, _ = model.backbone.frozen_parts()
    assert modules and all(not m.training for m in modules
                           for m in m.modules())
    frozen_ids = {id(m) for f in modules for m in f.modules()}
    for name, m in model.backbone.named_modules():
        if id(m) not in frozen_ids and name:
            assert m.training, name
    model.eval()
    model.train()
    assert all(not m.training for m in modules)


@pytest.mark.parametrize('cls', VARIANTS)
def test_frozen_blocks_are_deterministic_in_training(cls):
    """Dropout and drop-path do not act on frozen blocks: with every block
    frozen the backbone gives the same output in train and eval mode."""
    kw = dict(num_temporal_layers=1) if cls is ViViTM2 else {}
    model = cls(**CFG, **kw, drop_rate=0.3, drop_path_rate=0.5,
                attn_drop_rate=0.3)
    model.init_weights()
    total = model.num_blocks
    frozen = cls(**CFG, **kw, drop_rate=0.3, drop_path_rate=0.5,
                 attn_drop_rate=0.3, frozen_stages=total)
    frozen.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 4, 16, 16)
    frozen.train()
    out_train = frozen(x)
    frozen.eval()
    torch.testing.assert_close(out_train, frozen(x), rtol=0, atol=0)
    assert not any(p.requires_grad for p in frozen.parameters())


@pytest.mark.parametrize('cls, kw, total', [
    (ViViTM1, {}, 2), (ViViTM3, {}, 2), (ViViTM4, {}, 2),
    (ViViTM2, dict(num_temporal_layers=3), 5),
    (ViViTM2, dict(num_temporal_layers=0), 2)])
def test_frozen_stages_range(cls, kw, total):
    model = cls(**CFG, **kw, frozen_stages=total)
    assert model.num_blocks == total
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=rf'frozen_stages must be an int in '
                       rf'\[0, {total}\].*got {total + 1}'):
        cls(**CFG, **kw, frozen_stages=total + 1)
    with pytest.raises(ValueError, match='frozen_stages'):
        cls(**CFG, **kw, frozen_stages=-1)
    assert all(p.requires_grad for p in cls(**CFG, **kw).parameters())


def expected_depth(name: str, spatial: int, temporal: int):
    """The documented rule, written out: tokeniser and first tables 0,
    spatial block i -> i + 1, temporal block j -> spatial + j + 1, the
    spatial final norm and the temporal tables at the first temporal
    block's depth, everything else at the top."""
    top = spatial + temporal + 1
    if name.startswith('backbone.patch_embed.') or name in (
            'backbone.cls_token', 'backbone.pos_embed'):
        return 0
    m = re.match(r'backbone\.layers\.(\d+)\.', name)
    if m:
        return int(m.group(1)) + 1
    m = re.match(r'backbone\.temporal_layers\.(\d+)\.', name)
    if m:
        return spatial + int(m.group(1)) + 1
    if temporal and (name.startswith('backbone.norm.') or name in (
            'backbone.temporal_cls_token', 'backbone.temporal_pos_embed')):
        return spatial + 1
    return top


@pytest.mark.parametrize('cls, temporal', [
    (ViViTM1, 0), (ViViTM2, 3), (ViViTM2, 0), (ViViTM3, 0), (ViViTM4, 0)])
def test_layer_depth_of_every_parameter(cls, temporal):
    backbone = dict(type=cls.__name__, **CFG)
    if cls is ViViTM2:
        backbone['num_temporal_layers'] = temporal
    model = recognizer(backbone)
    bb = model.backbone
    depths = {}
    for name, _ in model.named_parameters():
        depth, num_layers = bb.get_layer_depth(name, 'backbone.')
        assert num_layers == 2 + 2 + temporal
        assert depth == expected_depth(name, 2, temporal), name
        depths[name] = depth
    assert min(depths.values()) == depths['backbone.patch_embed.projection.'
                                          'weight'] == 0
    assert depths['cls_head.fc_cls.weight'] == max(depths.values()) == \
        num_layers - 1
    if temporal:
        spatial = [d for n, d in depths.items() if '.layers.' in n
                   and 'temporal' not in n]
        later = [d for n, d in depths.items() if 'temporal_' in n]
        assert max(spatial) < min(later)
    if cls is ViViTM3:
        assert depths['backbone.layers.1.temporal_attn.qkv.weight'] == 2
    # without the prefix, a backbone's own names
    assert bb.get_layer_depth('layers.0.mlp.fc1.weight') == (1, num_layers)


@pytest.mark.parametrize('cls', [ViViTM1, ViViTM3, ViViTM4])
def test_layer_depth_matches_mmpretrain_vit(cls):
    """mmpretrain's VisionTransformer gives the same depth to the same
    parameter (its final norm is ``ln1``, ours ``norm``)."""
    from mmpretrain.models import VisionTransformer
    vit = VisionTransformer(arch=dict(TINY_ARCH), img_size=16, patch_size=8)
    ours = cls(**CFG)
    names = [n for n, _ in ours.named_parameters()] + ['head.fc.weight']
    for name in names:
        theirs = re.sub(r'^norm\.', 'ln1.', name)
        theirs = theirs.replace('temporal_attn', 'attn').replace(
            'temporal_norm', 'ln1')
        full = 'backbone.' + name if name != 'head.fc.weight' else name
        assert ours.get_layer_depth(full, 'backbone.') == \
            vit.get_layer_depth('backbone.' + theirs if full != name
                                else name, 'backbone.'), name
