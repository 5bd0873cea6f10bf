# ViViT-B/16x2 Model 1 (spatio-temporal attention over all 16x14x14 tokens)
# on Kinetics-400: 32 frames with stride 2 at 224x224, 4x3 test views.
# Paper (Table 2): 80.0 top-1, 455.2 GFLOPs, 88.9M params; Table 1: central
# frame initialisation of the tubelet embedding is the best (79.2 vs 77.6
# for filter inflation).
_base_ = ['_base_/models/vivit_m1.py', '_base_/vivit_k400.py']
