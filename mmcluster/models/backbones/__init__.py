from .clustr import ClusTR
from .context_cluster import ContextCluster
from .hc_resnet import HCResNet

__all__ = ['ContextCluster', 'ClusTR', 'HCResNet']
