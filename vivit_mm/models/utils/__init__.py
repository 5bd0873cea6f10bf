from .attention import (FactorisedDotProductAttention, MultiheadSelfAttention,
                        attend)
from .embed import TubeletEmbedding, UniformFrameEmbedding
from .transformer import (FFN, FactorisedSelfAttentionBlock, TransformerBlock,
                          drop_path_rates)

__all__ = [
    'attend', 'MultiheadSelfAttention', 'FactorisedDotProductAttention',
    'TubeletEmbedding', 'UniformFrameEmbedding', 'FFN', 'TransformerBlock',
    'FactorisedSelfAttentionBlock', 'drop_path_rates'
]
