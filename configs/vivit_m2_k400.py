# ViViT-B/16x2 Model 2 (factorised encoder, L_t = 4) on Kinetics-400:
# 32 frames with stride 2 at 224x224, 4x3 test views.
# Paper (Table 2): 78.8 top-1, 284.4 GFLOPs, 115.1M params.
_base_ = [
    '_base_/models/vivit_m2.py', '_base_/datasets/kinetics400_32x2_224.py',
    '_base_/schedules/sgd_warmup_cosine_30e.py', '_base_/default_runtime.py'
]
custom_imports = dict(imports=['vivit_mm'], allow_failed_imports=False)
default_scope = 'mmaction'

# ImageNet-21k ViT-B/16 weights (mmpretrain, timm or scenic format). Set this
# path, or override: --cfg-options custom_hooks.0.checkpoint=PATH
pretrained = 'checkpoints/vit-base-p16_in21k.pth'
custom_hooks = [
    dict(
        type='ViViTInitHook',
        checkpoint=pretrained,
        tubelet_init='central_frame')
]

# 12 test views (4 clips x 3 crops) go through the backbone 4 at a time.
model = dict(test_cfg=dict(max_testing_views=4))
