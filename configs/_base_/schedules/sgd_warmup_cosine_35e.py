# ViViT on Something-Something v2 (paper appendix): SGD with momentum 0.9,
# batch 64, base lr 0.5, 35 epochs, 2.5 epochs of linear warm-up, cosine.
_base_ = ['./sgd_warmup_cosine_30e.py']

max_epochs = 35
base_lr = 0.5

train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=2.5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=True,
        begin=2.5,
        end=max_epochs,
        convert_to_iter_based=True)
]
