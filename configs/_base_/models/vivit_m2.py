# ViViT-B/16x2 Model 2 (factorised encoder, L_t = 4 temporal layers).
_base_ = ['./vivit_m1.py']
model = dict(backbone=dict(type='ViViTM2', num_temporal_layers=4))
