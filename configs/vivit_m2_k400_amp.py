# ViViT-B/16x2 Model 2 on Kinetics-400 with bf16 mixed precision
# (mmengine's AmpOptimWrapper: forward under torch.autocast, bf16 matmuls,
# fp32 master weights). Needs a GPU with bf16 (Ampere or newer): in
# mmengine 0.10.7 AmpOptimWrapper refuses to build without CUDA/NPU/MLU.
# Use dtype='float16' on older GPUs (the dynamic loss scaler then matters).
_base_ = './vivit_m2_k400.py'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
