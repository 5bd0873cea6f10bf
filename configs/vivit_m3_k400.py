# ViViT-B/16x2 Model 3 (factorised self-attention: spatial, then temporal
# attention in every block) on Kinetics-400: 32 frames with stride 2 at
# 224x224, 4x3 test views. Paper (Table 2): 77.4 top-1, 372.3 GFLOPs,
# 117.3M params. The temporal attention is new; the spatial one comes from
# the image ViT.
_base_ = ['_base_/models/vivit_m3.py', '_base_/vivit_k400.py']
