# Fine-tune ViViT-B/16x2 Model 2 (factorised encoder) on your own videos:
# MMAction2 list files ("relative/path.mp4 label") under data/my_videos/,
# e.g. written by tools/data/build_video_lists.py (whose --config writes a
# child of this file with your lists, data root, classes and checkpoint).
# Guide: docs/finetune.md.
#
# Start: a Kinetics-400 Model 2 converted with tools/convert/scenic_to_vivit.py
# (load_from below; its 400-class head is not loaded into a head of another
# class count). Or from an image ViT (paper section 3.4): set load_from = None
# and use the ViViTInitHook lines at the end.
_base_ = [
    '_base_/models/vivit_m2.py', '_base_/datasets/kinetics400_32x2_224.py',
    '_base_/default_runtime.py'
]

num_classes = 10  # your classes (the list tool writes the number)
data_root = 'data/my_videos'
ann_file_train = 'data/my_videos/train.txt'
ann_file_val = 'data/my_videos/val.txt'
ann_file_test = 'data/my_videos/val.txt'  # or a test.txt of your own
load_from = 'checkpoints/vivit_m2_k400.pth'

# 16 frames, every 4th: the 64-frame span of the paper's 32x2 clips at half
# the tokens (about half the compute). The checkpoint's 32-frame temporal
# table is resized to 8 tubelets when it is loaded. For 32 frames set
# num_frames = 32, frame_interval = 2 here (values in this file are used
# where they are written, so change them in this file or a copy of it).
num_frames = 16
frame_interval = 4
crop_size = 224
short_side = 256

# Freeze the tokeniser, the CLS/position tables and the first N blocks
# (spatial blocks 0-11, then temporal 12-15): e.g. 12 trains only the
# temporal encoder and the head, for a hundred or so videos.
frozen_stages = 0

# The paper's regularisers (section 4.2), light or off for small data sets:
# stochastic depth and label smoothing on; RandAugment (paper: 2 ops,
# magnitude 20 on SSv2) and mixup (paper: alpha 0.3) off; switch them here.
drop_path_rate = 0.1
label_smoothing = 0.1
use_rand_augment = False
rand_augment_magnitude = 9
mixup_alpha = 0.0  # > 0 switches mixup on

model = dict(
    backbone=dict(
        num_frames=num_frames, drop_path_rate=drop_path_rate,
        frozen_stages=frozen_stages),
    cls_head=dict(
        num_classes=num_classes, label_smooth_eps=label_smoothing,
        dropout_ratio=0.5),  # before the new head, as MMAction2's heads
    data_preprocessor=dict(blending=dict(
        type='MixupBlending', num_classes=num_classes, alpha=mixup_alpha)
                           if mixup_alpha > 0 else None))

file_client_args = dict(io_backend='disk')
rand_augment = [
    dict(type='TorchVisionWrapper', op='RandAugment', num_ops=2,
         magnitude=rand_augment_magnitude, num_magnitude_bins=31)
] if use_rand_augment else []


def _read(num_clips, test_mode):
    return dict(type='VideoReadGuard', transforms=[
        dict(type='DecordInit', **file_client_args),
        dict(type='SampleFrames', clip_len=num_frames,
             frame_interval=frame_interval, num_clips=num_clips,
             test_mode=test_mode),
        dict(type='DecordDecode')])


train_pipeline = [
    _read(1, False),
    dict(type='Resize', scale=(-1, short_side)),
    dict(type='ScaleJitter', scale_range=(0.9, 1.33)),
    dict(type='RandomCrop', size=crop_size),
    dict(type='Flip', flip_ratio=0.5),  # off for left/right-sensitive labels
    *rand_augment,
    dict(type='VideoColorJitter', prob=0.8),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    _read(1, True),
    dict(type='Resize', scale=(-1, short_side)),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    _read(4, True),
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='ThreeCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
del _read

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    dataset=dict(dataset=dict(
        ann_file=ann_file_train, data_prefix=dict(video=data_root),
        pipeline=train_pipeline)))
val_dataloader = dict(
    num_workers=4,
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=val_pipeline))
test_dataloader = dict(
    num_workers=4,
    dataset=dict(ann_file=ann_file_test, data_prefix=dict(video=data_root),
                 pipeline=test_pipeline))

# A short schedule: 20 epochs, 2 of linear warm-up, then cosine.
max_epochs = 20
warmup_epochs = 2
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW, not the paper's SGD (momentum 0.9, lr 0.1 at batch 64, which
# trained Kinetics from an image model): a few thousand iterations from a
# trained video model need a small lr, and AdamW is far less sensitive to
# its value (as in ViT/MAE/VideoMAE fine-tuning). Layer-wise lr decay 0.8:
# with Model 2-B's 16 blocks the tokeniser gets 0.8**17 ~ 0.02 of the
# head's lr, about what 0.75 gives a 12-block ViT-B in MAE/BEiT fine-tuning;
# 1.0 switches it off. Weight decay only on kernels.
base_lr = 1e-4
layer_decay_rate = 0.8
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999),
                   weight_decay=0.05),
    constructor='ViViTLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=layer_decay_rate,
        norm_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'cls_token': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=0.0, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
# base_lr is for a total batch of 8 (one GPU); --auto-scale-lr rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=8)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))

# From an image ViT instead (paper section 3.4, central-frame tubelets):
# load_from = None
# custom_hooks = [
#     dict(type='ViViTInitHook',
#          checkpoint='checkpoints/vit-base-p16_in21k.pth',
#          tubelet_init='central_frame')
# ]
