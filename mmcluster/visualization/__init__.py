"""Visualisation helpers (imported on demand, not by ``import mmcluster``)."""
from .token_clusters import cluster_colors, collect_clusters, draw_token_clusters

__all__ = ['cluster_colors', 'collect_clusters', 'draw_token_clusters']
