"""Every load into a ViViT backbone/head checks that the checkpoint fits
(vivit_mm/models/utils/load_checks.py): MMAction2's ``init_recognizer``
refuses another model's checkpoint and another class count, the right one
loads, position tables of another grid are still resized, and a model being
trained (after ``init_weights``) takes a head of another class count."""
import pytest
import torch
from mmaction.apis import init_recognizer
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from tests.conftest import REPO
from vivit_mm.models.utils.load_checks import (CheckpointMisfitError, compare,
                                               configure_load_checks,
                                               likely_causes)
from vivit_mm.utils.build import build_model

CONFIG = str(REPO / 'configs' / 'vivit_m2_synthetic.py')
WEIGHTS = str(REPO / 'tests' / 'assets' / 'vivit_m2_synthetic_demo.pth')


def _cfg(**options):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(options)
    return cfg


@pytest.fixture(scope='module')
def weights():
    return torch.load(WEIGHTS, map_location='cpu',
                      weights_only=True)['state_dict']


def test_right_checkpoint_loads_exactly(weights):
    model = init_recognizer(_cfg(), WEIGHTS, device='cpu')
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_init_recognizer_refuses_another_class_count():
    with pytest.raises(CheckpointMisfitError) as e:
        init_recognizer(_cfg(**{'model.cls_head.num_classes': 5}), WEIGHTS,
                        device='cpu')
    msg = str(e.value)
    assert 'does not fit the ViViTHead head (cls_head)' in msg
    assert '2 of another shape (cls_head.fc_cls.bias: checkpoint [4], ' \
        'model [5]' in msg
    assert 'another class count: 4 classes in the checkpoint, 5 in this ' \
        'model' in msg


@pytest.mark.parametrize('options, counts, cause', [
    ({'model.backbone.num_temporal_layers': 0}, '28 unexpected keys',
     'another variant or pooling (only the checkpoint has '
     'temporal_cls_token, temporal_layers, temporal_norm'),
    ({'model.backbone.arch.num_layers': 2}, '12 unexpected keys '
     '(backbone.layers.2.attn.proj.bias', 'another depth: 3 blocks in '
     'layers of the checkpoint, 2 here'),
    ({'model.backbone.arch.embed_dims': 32, 'model.cls_head.in_channels': 32,
      'model.backbone.arch.feedforward_channels': 128}, '70 of another shape',
     'another width: embed_dims 64 in the checkpoint, 32 here'),
])
def test_init_recognizer_refuses_another_model(options, counts, cause):
    with pytest.raises(CheckpointMisfitError) as e:
        init_recognizer(_cfg(**options), WEIGHTS, device='cpu')
    msg = str(e.value)
    assert msg.startswith('The checkpoint does not fit the ViViTM2 backbone')
    assert counts in msg and cause in msg
    assert 'allow_backbone_misfit' in msg  # the documented way out


def test_tubelet_and_tokeniser_are_named():
    ours = {'patch_embed.projection.weight': (64, 3, 2, 8, 8)}
    assert likely_causes(ours, {'patch_embed.projection.weight':
                                (64, 3, 4, 8, 8)}) == [
        'another tubelet size or frame count: tubelets of 4 frames in the '
        'checkpoint, 2 here']
    assert likely_causes(ours, {'patch_embed.projection.weight':
                                (64, 3, 8, 8)}) == [
        'another tokeniser (tubelets vs uniform frame sampling)']
    misfit = compare(ours, {})
    assert misfit.missing == ['patch_embed.projection.weight']
    assert likely_causes(ours, {})[0].startswith('it holds no weights')


def test_position_tables_of_another_grid_are_resized(weights):
    model = init_recognizer(_cfg(**{'model.backbone.num_frames': 16}),
                            WEIGHTS, device='cpu')
    assert model.backbone.temporal_pos_embed.shape[1] == 16 + 1
    assert torch.equal(model.backbone.layers[0].attn.qkv.weight,
                       weights['backbone.layers.0.attn.qkv.weight'])


def test_training_takes_a_head_of_another_class_count(weights):
    """What Runner.train() does: init_weights, then load_from."""
    model = build_model(_cfg(**{'model.cls_head.num_classes': 5}).model)
    model.init_weights()
    fresh = model.cls_head.fc_cls.weight.detach().clone()
    load_checkpoint(model, WEIGHTS, map_location='cpu')
    assert torch.equal(model.cls_head.fc_cls.weight, fresh)
    assert torch.equal(model.backbone.norm.weight,
                       weights['backbone.norm.weight'])


def test_training_refuses_a_misfit_backbone_unless_allowed(weights):
    cfg = _cfg(**{'model.backbone.arch.num_layers': 2})
    model = build_model(cfg.model)
    model.init_weights()
    configure_load_checks(model, source="Checkpoint 'x.pth'")
    with pytest.raises(CheckpointMisfitError, match=r"^Checkpoint 'x.pth' "
                       'does not fit the ViViTM2 backbone'):
        load_checkpoint(model, WEIGHTS, map_location='cpu')
    configure_load_checks(model, allow_backbone_misfit=True)
    load_checkpoint(model, WEIGHTS, map_location='cpu')
    assert torch.equal(model.backbone.layers[1].attn.qkv.weight,
                       weights['backbone.layers.1.attn.qkv.weight'])
    # testing the same model (not initialised) still refuses
    model = build_model(cfg.model)
    configure_load_checks(model, allow_backbone_misfit=True)
    with pytest.raises(CheckpointMisfitError):
        load_checkpoint(model, WEIGHTS, map_location='cpu')


def test_deploy_loader_resizes_and_names_the_file(weights):
    """vivit_mm.deploy.loading.load_recognizer (extract_features.py,
    vis_attention.py, export_onnx.py) goes through the same checks."""
    from vivit_mm.deploy.loading import load_recognizer
    model = load_recognizer(CONFIG, WEIGHTS,
                            {'model.backbone.num_frames': 16})
    assert model.backbone.temporal_pos_embed.shape[1] == 16 + 1
    assert not model.training
    with pytest.raises(CheckpointMisfitError,
                       match=f"^Checkpoint '{WEIGHTS}' does not fit the "
                       'ViViTHead head'):
        load_recognizer(CONFIG, WEIGHTS, {'model.cls_head.num_classes': 3})
