# ViViT-B/16x2 Model 2 (factorised encoder) on Something-Something v2
# (174 classes): 32 frames with stride 2 at 224x224, 4x1 test views, with the
# paper's SSv2 regularisers: RandAugment 2/20, stochastic depth 0.3, label
# smoothing 0.3, mixup 0.3, no horizontal flip, lr 0.5 for 35 epochs.
# The paper reports SSv2 only for ViViT-L/16x2 FE (65.9 top-1, see
# vivit_l_m2_ssv2.py); for ViViT-B the paper gives no SSv2 number.
# Initialisation: ImageNet-21k ViT (the paper initialises SSv2 models from
# Kinetics ones in its ablations; set load_from for that).
_base_ = [
    '_base_/models/vivit_m2.py', '_base_/datasets/sthv2_32x2_224.py',
    '_base_/schedules/sgd_warmup_cosine_35e.py', '_base_/default_runtime.py'
]
num_classes = 174

pretrained = 'checkpoints/vit-base-p16_in21k.pth'
custom_hooks = [
    dict(
        type='ViViTInitHook',
        checkpoint=pretrained,
        tubelet_init='central_frame')
]

model = dict(
    backbone=dict(drop_path_rate=0.3),
    cls_head=dict(num_classes=num_classes, label_smooth_eps=0.3),
    data_preprocessor=dict(
        blending=dict(
            type='MixupBlending', num_classes=num_classes, alpha=0.3)))
