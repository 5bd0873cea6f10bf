"""Looking inside a trained ViViT: attention maps and their overlays."""
from .attention_maps import (AttentionMaps, attention_maps, full_attention,
                             object_mass_ratio, recognizer_maps,
                             record_attention, rollout)

__all__ = ['AttentionMaps', 'attention_maps', 'full_attention',
           'object_mass_ratio', 'recognizer_maps', 'record_attention',
           'rollout']
