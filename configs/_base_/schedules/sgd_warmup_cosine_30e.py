# ViViT on Kinetics (paper appendix): SGD with momentum 0.9, batch 64,
# base lr 0.1, 30 epochs, 2.5 epochs of linear warm-up then cosine decay.
# Scenic's released K400 Model 2 config uses lr 0.05 instead.
# Weight decay 0 and gradient-norm clipping at 1 follow scenic's ViViT
# configs (l2_decay_factor = 0, max_grad_norm = 1).
max_epochs = 30
warmup_epochs = 2.5
base_lr = 0.1

train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))

# Per-iteration schedules expressed in epochs (convert_to_iter_based).
# LinearLR cannot start from exactly 0 in mmengine (it divides by the start
# factor), so warm-up starts at 1e-3 x base lr.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]

# The learning rates above are for a total batch of 64 (8 GPUs x 8 clips).
# With another total batch, pass --auto-scale-lr to scale them linearly.
auto_scale_lr = dict(enable=False, base_batch_size=64)
