from .hcformer_head import HCFormerHead, unpack_hc_features
from .hcformer_seg_head import HCFCNHead, HCFormerSegHead

__all__ = ['HCFormerHead', 'HCFormerSegHead', 'HCFCNHead', 'unpack_hc_features']
