# Kinetics-400 for ViViT (paper appendix; scenic's K400 pipeline):
# 32 frames with stride 2, short side resized to 256, scale jitter 0.9-1.33,
# random 224 crop, horizontal flip 0.5, colour jitter with probability 0.8.
# Test: 4 temporal clips x 3 spatial crops (12 views), logits averaged.
# Layout follows MMAction2's tools/data/kinetics (video list files
# "relative/path.mp4 label"); nothing here needs to exist to build a config.
dataset_type = 'VideoDataset'
data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
ann_file_test = 'data/kinetics400/kinetics400_val_list_videos.txt'
file_client_args = dict(io_backend='disk')

num_frames = 32
frame_interval = 2
crop_size = 224
short_side = 256

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
    dict(type='Flip', flip_ratio=0.5),
    # DMVR/scenic colour augmentation (brightness +-32/255, saturation and
    # contrast 0.6-1.4, hue +-0.2), one draw per clip, probability 0.8.
    dict(type='VideoColorJitter', prob=0.8),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Validation during training: one centre view (cheap); the test is 4x3.
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
    # SlowFast-style 3-crop (as in DMVR): short side = crop size, then left,
    # centre and right (top, centre, bottom for portrait videos) crops.
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='ThreeCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

# 8 GPUs x 8 clips = the paper's batch of 64 (auto_scale_lr base).
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
