# ViViT-L/16x2 Model 1 on Kinetics-400, 32 frames at 224x224, 4x3 views.
# Paper (Table 5): 80.3 top-1 at 224 (80.7 at 288, 81.0 at 320 crops).
# 8 GPUs x 4 clips = 32: pass --auto-scale-lr (base batch 64) or use 16 GPUs.
_base_ = ['./vivit_m1_k400.py']

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
