# Something-Something v2 for ViViT (paper appendix): 32 frames with stride 2,
# scale jitter 0.9-1.33 and a random 224 crop, RandAugment 2 layers /
# magnitude 20 applied identically to every frame of a clip, NO horizontal
# flip (labels such as "pushing something from left to right" depend on it)
# and no colour jitter. Test: 4 temporal clips x 1 centre crop.
# (Scenic's own SSv2 config differs: stride 1 and 256 crops; set
#  frame_interval = 1 / crop_size = 256 and the backbone's img_size to follow
#  it.) Layout follows MMAction2's tools/data/sthv2 (webm videos, list files
# "id.webm label").
dataset_type = 'VideoDataset'
data_root = 'data/sthv2/videos'
data_root_val = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'
file_client_args = dict(io_backend='disk')

num_frames = 32
frame_interval = 2
crop_size = 224
short_side = 256

# torchvision's RandAugment on the stacked (T, C, H, W) clip: one draw of the
# 2 operations and their signs per clip, applied to every frame. Magnitude is
# on torchvision's 0..30 scale (num_magnitude_bins=31).
rand_augment = dict(
    type='TorchVisionWrapper',
    op='RandAugment',
    num_ops=2,
    magnitude=20,
    num_magnitude_bins=31)

train_pipeline = [
    dict(type='VideoReadGuard', transforms=[
        dict(type='DecordInit', **file_client_args),
        dict(
            type='SampleFrames',
            clip_len=num_frames,
            frame_interval=frame_interval,
            num_clips=1),
        dict(type='DecordDecode')]),
    dict(type='Resize', scale=(-1, short_side)),
    dict(type='ScaleJitter', scale_range=(0.9, 1.33)),
    dict(type='RandomCrop', size=crop_size),
    rand_augment,
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='VideoReadGuard', transforms=[
        dict(type='DecordInit', **file_client_args),
        dict(
            type='SampleFrames',
            clip_len=num_frames,
            frame_interval=frame_interval,
            num_clips=1,
            test_mode=True),
        dict(type='DecordDecode')]),
    dict(type='Resize', scale=(-1, short_side)),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='VideoReadGuard', transforms=[
        dict(type='DecordInit', **file_client_args),
        dict(
            type='SampleFrames',
            clip_len=num_frames,
            frame_interval=frame_interval,
            num_clips=4,
            test_mode=True),
        dict(type='DecordDecode')]),
    dict(type='Resize', scale=(-1, short_side)),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    # ResumableSampler + ReproducibleDataset: each sample's augmentation is
    # seeded with (seed, epoch, index), so --resume continues exactly.
    sampler=dict(type='ResumableSampler', shuffle=True),
    dataset=dict(
        type='ReproducibleDataset',
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file_train,
            data_prefix=dict(video=data_root),
            pipeline=train_pipeline)))
# Batch 1 for validation and test: Recognizer3D's test_cfg.max_testing_views
# (set in the top-level configs) only accepts one video per batch.
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
