# ViViT-B/16x2 Model 4 (factorised dot-product attention: half of the heads
# over time, half over space).
_base_ = ['./vivit_m1.py']
model = dict(backbone=dict(type='ViViTM4'))
