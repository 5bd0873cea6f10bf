# ViViT-B/16x2 Model 2 on Kinetics-400 with torch.compile: mmengine's Runner
# compiles model.train_step when the config sets `compile` (True, or a dict
# of torch.compile options). The first iterations are slow while it
# compiles; validation and testing run eagerly. Combine with the AMP
# config by basing on vivit_m2_k400_amp.py instead.
_base_ = './vivit_m2_k400.py'

compile = True
