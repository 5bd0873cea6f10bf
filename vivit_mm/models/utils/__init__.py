from .attention import AXES, MultiheadSelfAttention, attend
from .embed import TubeletEmbedding, UniformFrameEmbedding
from .transformer import FFN, TransformerBlock, drop_path_rates

__all__ = [
    'AXES', 'attend', 'MultiheadSelfAttention', 'TubeletEmbedding',
    'UniformFrameEmbedding', 'FFN', 'TransformerBlock', 'drop_path_rates'
]
