# ViViT-L/16x2 Model 2 (factorised encoder) on Kinetics-400, 32 frames at
# 224x224. Paper (state of the art table): 81.7 top-1 with 1x3 views
# (11.94 TFLOPs); the released checkpoint reports 80.3.
# 8 GPUs x 4 clips = 32: pass --auto-scale-lr (base batch 64) or use 16 GPUs.
_base_ = ['./vivit_m2_k400.py']

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
