"""The one layout detector (:func:`vivit_mm.convert.layouts.detect_layout`):
which model family named a state dict's keys, and errors that say what was
expected and what the keys look like."""
import re

import pytest
import torch

from vivit_mm import inflate_image_weights
from vivit_mm.convert import detect_hf_layout
from vivit_mm.convert.image_vit import IMAGE_LAYOUTS
from vivit_mm.convert.layouts import DESCRIPTIONS, LAYOUTS, detect_layout
from vivit_mm.models import ViViTM1

# A few keys of each layout, as the checkpoints name them.
KEYS = {
    'mmpretrain': ['backbone.cls_token', 'backbone.layers.0.ln1.weight',
                   'backbone.layers.0.ffn.layers.0.0.weight'],
    'timm': ['cls_token', 'blocks.0.norm1.weight', 'blocks.0.mlp.fc1.weight',
             'head.weight'],
    'flax': ['opt/target/embedding/kernel',
             'opt/target/Transformer/encoderblock_0/LayerNorm_0/scale'],
    'hf-4.x': ['vivit.embeddings.cls_token',
               'vivit.encoder.layer.0.attention.attention.query.weight',
               'classifier.weight'],
    'hf-5.x': ['vivit.embeddings.cls_token',
               'vivit.layers.0.attention.q_proj.weight', 'classifier.weight'],
    'vivit_mm': ['backbone.pos_embed', 'backbone.layers.0.mlp.fc1.weight',
                 'cls_head.fc_cls.weight'],
}


@pytest.mark.parametrize('layout', LAYOUTS)
def test_each_layout_is_detected(layout):
    assert detect_layout(KEYS[layout]) == layout
    assert detect_layout(KEYS[layout], expected=(layout, )) == layout


def test_other_trees_and_prefixes():
    # mmpretrain without the backbone. prefix; scenic's Model 2 encoders
    assert detect_layout(['layers.0.ln1.weight']) == 'mmpretrain'
    assert detect_layout(['SpatialTransformer/encoderblock_0/LayerNorm_0/'
                          'scale']) == 'flax'
    assert detect_layout(['vivit.layers.0.attention.q_proj.weight']) == \
        'hf-5.x'
    assert detect_hf_layout(KEYS['hf-4.x']) == '4.x'
    assert detect_hf_layout(KEYS['hf-5.x']) == '5.x'


def test_error_names_what_was_expected_and_what_the_keys_look_like():
    with pytest.raises(ValueError) as err:
        detect_layout(KEYS['hf-4.x'], IMAGE_LAYOUTS, 'image ViT checkpoint')
    text = str(err.value)
    assert text.startswith('Cannot tell the layout of the image ViT '
                           'checkpoint: expected ')
    for name in IMAGE_LAYOUTS:
        assert DESCRIPTIONS[name] in text
    assert f'It looks like {DESCRIPTIONS["hf-4.x"]}.' in text
    assert re.search(r"First keys: \['classifier\.weight', ", text)
    # keys of no known layout: what was expected, and the keys
    with pytest.raises(ValueError) as err:
        detect_layout(['conv1.weight'], ('hf-4.x', 'hf-5.x'),
                      'HuggingFace ViViT checkpoint')
    text = str(err.value)
    assert (f'expected {DESCRIPTIONS["hf-4.x"]}; or '
            f'{DESCRIPTIONS["hf-5.x"]}.') in text
    assert 'It looks like' not in text
    assert "First keys: ['conv1.weight']" in text
    # keys of two expected layouts at once
    with pytest.raises(ValueError, match=r"mix \['mmpretrain', 'timm'\]"):
        detect_layout(KEYS['mmpretrain'] + KEYS['timm'], IMAGE_LAYOUTS)


def test_vivit_checkpoint_where_an_image_vit_is_expected():
    with pytest.raises(ValueError, match=r'looks like a ViViT checkpoint.*'
                       r'load it with load_from or init_cfg='):
        detect_layout(KEYS['vivit_mm'], IMAGE_LAYOUTS)


def test_inflation_names_what_the_checkpoint_is(tmp_path):
    """A ViViT checkpoint given to inflation says to use load_from; a
    HuggingFace ViViT says what it looks like."""
    arch = dict(embed_dims=32, num_layers=1, num_heads=4,
                feedforward_channels=64)
    model = ViViTM1(arch=arch, img_size=32, num_frames=4, patch_size=8)
    path = tmp_path / 'vivit.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in
                                model.state_dict().items()}), path)
    with pytest.raises(ValueError, match=r'image ViT checkpoint looks like '
                       r'a ViViT checkpoint.*load it with load_from'):
        inflate_image_weights(model, str(path), logger=None)
    hf = {k: torch.zeros(1) for k in KEYS['hf-5.x']}
    with pytest.raises(ValueError, match=re.escape(
            f'It looks like {DESCRIPTIONS["hf-5.x"]}.')):
        inflate_image_weights(model, hf, logger=None)
