from .clustering_attention import ClusteringAttention
from .context_cluster import ContextClusterLayer
from .dpc_knn import cluster_softmax_weights, dpc_knn, dpc_knn_dense, dpc_knn_multi, merge_tokens
from .hc_clustering import HCClustering, hc_scale_regulariser
from .hc_decode import hc_decode, hc_decode_hierarchy

__all__ = [
    'ContextClusterLayer', 'ClusteringAttention', 'dpc_knn', 'dpc_knn_multi', 'dpc_knn_dense', 'merge_tokens',
    'cluster_softmax_weights',
    'HCClustering', 'hc_scale_regulariser', 'hc_decode', 'hc_decode_hierarchy'
]
