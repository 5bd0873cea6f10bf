"""ViViTHead inside MMAction2's own Recognizer3D."""
import pytest
import torch
from mmaction.models.heads import BaseHead
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.registry import DefaultScope

from vivit_mm.compat import pred_score_of, set_gt_label
from vivit_mm.models import ViViTHead


def recognizer(backbone_type='ViViTM2', **head_kw):
    cfg = dict(
        type='Recognizer3D',
        backbone=dict(type=backbone_type,
                      arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                                feedforward_channels=64),
                      img_size=32, num_frames=4, patch_size=16,
                      tubelet_size=2),
        cls_head=dict(type='ViViTHead', num_classes=5, in_channels=32,
                      **head_kw),
        data_preprocessor=dict(type='ActionDataPreprocessor',
                               mean=[127.5] * 3, std=[127.5] * 3,
                               format_shape='NCTHW'))
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def samples(labels):
    out = []
    for label in labels:
        out.append(set_gt_label(ActionDataSample(), torch.tensor([label])))
    return out


def test_head_is_a_base_head_with_documented_init():
    head = ViViTHead(num_classes=7, in_channels=16, dropout_ratio=0.5)
    assert isinstance(head, BaseHead)
    head.init_weights()
    assert head.fc_cls.bias.abs().sum() == 0
    assert 0 < head.fc_cls.weight.std() < 0.03
    zero = ViViTHead(num_classes=7, in_channels=16, init_std=0)
    zero.init_weights()
    assert zero.fc_cls.weight.abs().sum() == 0
    assert zero(torch.randn(2, 16)).abs().sum() == 0
    with pytest.raises(ValueError, match='dropout_ratio'):
        ViViTHead(num_classes=7, in_channels=16, dropout_ratio=1.0)
    with pytest.raises(ValueError, match=r'\[B, 16\]'):
        head(torch.randn(2, 8))


def test_label_smoothing_comes_from_base_head():
    model = recognizer(label_smooth_eps=0.3)
    head = model.cls_head
    feats = torch.randn(3, 32)
    scores = head(feats)
    loss = head.loss_by_feat(scores, samples([0, 1, 4]))['loss_cls']
    target = torch.full((3, 5), 0.3 / 5)
    target[torch.arange(3), torch.tensor([0, 1, 4])] += 0.7
    ref = -(target * scores.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(loss, ref)


def test_recognizer_loss_under_bf16_autocast():
    """Mixed precision (AmpOptimWrapper with dtype='bfloat16' on a GPU,
    BF16OptimWrapper on a CPU) runs the loss under autocast: the scores
    come out float32, so BaseHead's NumPy top-k accuracy accepts them."""
    model = recognizer()
    inputs = torch.randint(0, 255, (2, 1, 3, 4, 32, 32)).float()
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples([1, 3])), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = model.extract_feat(data['inputs'])[0]
        assert model.cls_head.fc_cls(feats).dtype == torch.bfloat16
        assert model.cls_head(feats).dtype == torch.float32
        losses = model(**data, mode='loss')
    assert losses['loss_cls'].dtype == torch.float32
    assert torch.isfinite(losses['loss_cls'])
    assert 'top1_acc' in losses
    # float64 stays float64 (no silent downcast)
    head = model.cls_head.double()
    assert head(torch.randn(2, 32, dtype=torch.float64)).dtype == \
        torch.float64


@pytest.mark.parametrize('backbone', ['ViViTM1', 'ViViTM2', 'ViViTM3',
                                      'ViViTM4'])
def test_recognizer3d_trains_and_averages_views(backbone):
    model = recognizer(backbone, average_clips='score')
    # [B, views, C, T, H, W] uint8-range frames, as the pipeline gives them
    train = dict(inputs=[torch.randint(0, 256, (1, 3, 4, 32, 32)).float()
                         for _ in range(2)], data_samples=samples([1, 3]))
    model.train()
    losses = model.train_step(train, optim_wrapper=_sgd(model))
    assert torch.isfinite(losses['loss_cls'])
    # test time: 3 views per video
    inputs = [torch.randint(0, 256, (3, 3, 4, 32, 32)).float()
              for _ in range(2)]
    data = dict(inputs=inputs, data_samples=samples([1, 3]))
    model.eval()
    preds = model.val_step(data)
    assert len(preds) == 2
    # 'score' averaging: the prediction is the mean of the per-view logits
    x = model.data_preprocessor(data)['inputs']  # [B, views, C, T, H, W]
    with torch.no_grad():
        per_view = model.cls_head(model.backbone(x.flatten(0, 1)))
    ref = per_view.reshape(2, 3, 5).mean(1)
    got = torch.stack([pred_score_of(p) for p in preds])
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)

    # max_testing_views chunks the views but does not change the result
    model.test_cfg = dict(max_testing_views=2)
    single = dict(inputs=inputs[:1], data_samples=samples([1]))
    chunked = pred_score_of(model.val_step(single)[0])
    torch.testing.assert_close(chunked, ref[0], rtol=1e-5, atol=1e-5)


def _sgd(model):
    from mmengine.optim import OptimWrapper
    return OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
