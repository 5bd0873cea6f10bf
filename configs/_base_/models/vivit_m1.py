# ViViT-B/16x2 Model 1 (spatio-temporal attention): 32 frames at 224x224,
# tubelets 2x16x16, 400 classes. The other variants are children of this
# file that change the backbone type (pooling is each variant's default:
# the CLS token for Models 1 and 2, average pooling for 3 and 4).
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ViViTM1',
        arch='b',
        img_size=224,
        num_frames=32,
        patch_size=16,
        tubelet_size=2,
        tokenizer='tubelet',
        drop_path_rate=0.0),
    cls_head=dict(
        type='ViViTHead',
        num_classes=400,
        in_channels=768,
        average_clips='score'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        format_shape='NCTHW'),
    # multi-view tests go through the backbone 4 views at a time
    test_cfg=dict(max_testing_views=4))
