# ViViT-B/16x2 Model 2 (factorised encoder, L_t = 4) on Kinetics-400:
# 32 frames with stride 2 at 224x224, 4x3 test views.
# Paper (Table 2): 78.8 top-1, 284.4 GFLOPs, 115.1M params.
_base_ = ['_base_/models/vivit_m2.py', '_base_/vivit_k400.py']
