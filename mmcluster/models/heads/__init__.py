from .hcformer_head import HCFormerHead, unpack_hc_features
from .hcformer_seg_head import HCFCNHead, HCFormerSegHead
from .kmax_head import KMaXFusionHead, KMaXHead
from .kmax_seg_head import KMaXSegHead
from .clusterformer_head import ClusterFormerHead
from .clusterformer_seg_head import ClusterFormerSegHead
from .clusterformer_detr import ClusterFormerDETR

__all__ = ['HCFormerHead', 'HCFormerSegHead', 'HCFCNHead', 'unpack_hc_features',
           'KMaXHead', 'KMaXFusionHead', 'KMaXSegHead',
           'ClusterFormerHead', 'ClusterFormerSegHead', 'ClusterFormerDETR']
