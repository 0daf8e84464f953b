from .hcformer_neck import HCFeatures, HCFormerNeck
from .kmax_pixel_decoder import KMaXPixelDecoder

__all__ = ['HCFormerNeck', 'HCFeatures',
    'KMaXPixelDecoder',
]
