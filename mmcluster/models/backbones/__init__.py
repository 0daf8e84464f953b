from .clustr import ClusTR
from .context_cluster import ContextCluster

__all__ = ['ContextCluster', 'ClusTR']
