"""Building blocks shared by mmcluster's models (not registered)."""
from .cluster_record import ClusterRecord, ClusterRecorder, recording_clusters

__all__ = ['ClusterRecord', 'ClusterRecorder', 'recording_clusters']
