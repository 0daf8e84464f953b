from .clustering_attention import ClusteringAttention
from .context_cluster import ContextClusterLayer
from .dpc_knn import cluster_softmax_weights, dpc_knn, dpc_knn_dense, dpc_knn_multi, merge_tokens
from .hc_clustering import HCClustering
from .hc_decode import hc_decode, hc_decode_hierarchy
from .kmax_axial_attention import KMaXAxialAttention, KMaXAxialAttention2D, KMaXRelativePositionalEncoding
from .kmax_blocks import KMaXBlock, KMaXBlockGroup, KMaXLayerNorm2d, KMaXResizedFuse
from .kmax_conv_bn import KMaXConvBN, build_kmax_norm
from .kmax_predictor import KMaXPredictor
from .kmax_semantic_predictor import KMaXSemanticPredictor
from .kmax_transformer_decoder import KMaXTransformerDecoder
from .kmeans_cross_attention import KMeansCrossAttentionLayer
from .clusterformer_clustering import RecurrentCrossAttentionClustering
from .clusterformer_dispatch import FeatureDispatch
from .clusterformer_mixer import ClusterFormerMixer
from .clusterformer_cross_attention import RecurrentClusteringCrossAttention

__all__ = [
    'ContextClusterLayer', 'ClusteringAttention', 'dpc_knn', 'dpc_knn_multi', 'dpc_knn_dense', 'merge_tokens',
    'cluster_softmax_weights',
    'HCClustering', 'hc_decode', 'hc_decode_hierarchy',
    'KMaXConvBN', 'build_kmax_norm', 'KMaXPredictor', 'KMeansCrossAttentionLayer', 'KMaXTransformerDecoder',
    'KMaXAxialAttention', 'KMaXAxialAttention2D', 'KMaXRelativePositionalEncoding', 'KMaXBlock', 'KMaXBlockGroup',
    'KMaXLayerNorm2d', 'KMaXResizedFuse', 'KMaXSemanticPredictor',
    'RecurrentCrossAttentionClustering', 'FeatureDispatch', 'ClusterFormerMixer',
    'RecurrentClusteringCrossAttention'
]
