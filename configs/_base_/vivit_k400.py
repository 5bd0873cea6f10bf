# What the ViViT-B/16x2 Kinetics-400 configs share: the K400 pipelines, the
# paper's SGD recipe (30 epochs), the runtime, and the start from an
# ImageNet-21k ViT-B/16 (paper section 3.4; central frame initialisation of
# the tubelets, Table 1's best). A config adds one model base:
#   _base_ = ['_base_/models/vivit_m2.py', '_base_/vivit_k400.py']
_base_ = [
    './datasets/kinetics400_32x2_224.py',
    './schedules/sgd_warmup_cosine_30e.py', './default_runtime.py'
]

# ImageNet-21k ViT-B/16 weights (mmpretrain, timm or scenic format). Set this
# path, or override: --cfg-options custom_hooks.0.checkpoint=PATH
pretrained = 'checkpoints/vit-base-p16_in21k.pth'
custom_hooks = [
    dict(
        type='ViViTInitHook',
        checkpoint=pretrained,
        tubelet_init='central_frame')
]
