# ViViT-B/16x2 Model 4 (factorised dot-product attention: half of the heads
# attend over time, half over space) on Kinetics-400: 32 frames with stride
# 2 at 224x224, 4x3 test views. Paper (Table 2): 76.3 top-1, 277.1 GFLOPs,
# 88.9M params. The image ViT weights load unchanged.
_base_ = ['_base_/models/vivit_m4.py', '_base_/vivit_k400.py']
