"""Shared by the model tests: building a backbone with random position
tables and CLS tokens, and a random clip for a backbone config."""
import torch

from vivit_mm.models import ViViTM1, ViViTM2, ViViTM3, ViViTM4

VARIANTS = [ViViTM1, ViViTM2, ViViTM3, ViViTM4]


def build(cls, cfg, **kw):
    """``cls(**cfg, **kw)``, initialised, in eval mode."""
    model = cls(**{**cfg, **kw})
    model.init_weights()
    # Random position embeddings/CLS tokens so that mapping bugs show.
    for name, p in model.named_parameters():
        if 'pos_embed' in name or 'cls_token' in name:
            torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def video(cfg, batch=2, seed=0):
    """A random clip ``[batch, 3, num_frames, img_size, img_size]``."""
    g = torch.Generator().manual_seed(seed)
    size = cfg['img_size']
    return torch.randn(batch, 3, cfg['num_frames'], size, size, generator=g)
