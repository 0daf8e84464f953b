from .hcformer_neck import HCFeatures, HCFormerNeck
from .kmax_pixel_decoder import KMaXPixelDecoder
from .clusterformer_neck import ConcatGlobalAveragePooling

__all__ = ['HCFormerNeck', 'HCFeatures', 'KMaXPixelDecoder', 'ConcatGlobalAveragePooling']
