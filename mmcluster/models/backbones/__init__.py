from .clustr import ClusTR
from .context_cluster import ContextCluster
from .hc_resnet import HCResNet
from .hc_swin import HCSwinTransformer
from .clusterformer import ClusterFormer
from .kmax_convnext import KMaXConvNeXt

__all__ = ['ContextCluster', 'ClusTR', 'HCResNet', 'HCSwinTransformer', 'ClusterFormer', 'KMaXConvNeXt']
