# ViViT-B/16x2 Model 1 on Kinetics-400 with activation checkpointing: each
# encoder block's activations are recomputed in the backward pass, so only
# the block inputs are kept (16 x 224^2 clips keep under a tenth of the
# activation memory; the measured step-time cost is in docs/performance.md).
_base_ = './vivit_m1_k400.py'

model = dict(backbone=dict(with_cp=True))
