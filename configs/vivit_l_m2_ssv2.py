# ViViT-L/16x2 Model 2 (factorised encoder) on Something-Something v2.
# Paper (state of the art table): 65.9 top-1.
# 8 GPUs x 4 clips = 32: pass --auto-scale-lr (base batch 64) or use 16 GPUs.
_base_ = ['./vivit_m2_ssv2.py']

pretrained = 'checkpoints/vit-large-p16_in21k.pth'
custom_hooks = [
    dict(
        type='ViViTInitHook',
        checkpoint=pretrained,
        tubelet_init='central_frame')
]
model = dict(
    backbone=dict(arch='l'), cls_head=dict(in_channels=1024),
    test_cfg=dict(max_testing_views=2))
train_dataloader = dict(batch_size=4)
