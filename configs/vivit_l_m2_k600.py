# ViViT-L/16x2 Model 2 (factorised encoder) on Kinetics-600, 32 frames with
# stride 2 at 224x224, 4x3 views: the setting of the official Kinetics-600
# release (81.6 top-1, docs/model_zoo.md). Data: MMAction2's Kinetics-600
# layout (tools/data/kinetics with DATASET=kinetics600).
_base_ = ['./vivit_l_m2_k400.py']

num_classes = 600
model = dict(cls_head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(dataset=dict(
    ann_file='data/kinetics600/kinetics600_train_list_videos.txt',
    data_prefix=dict(video='data/kinetics600/videos_train'))))
val_dataloader = dict(dataset=dict(
    ann_file='data/kinetics600/kinetics600_val_list_videos.txt',
    data_prefix=dict(video='data/kinetics600/videos_val')))
test_dataloader = val_dataloader
