# ViViT-B/16x2 Model 3 (factorised self-attention: space, then time).
_base_ = ['./vivit_m1.py']
model = dict(backbone=dict(type='ViViTM3', attention_order='space_time'))
