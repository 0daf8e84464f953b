"""Building blocks shared by mmcluster's models (not registered)."""
from .channel_check import install_channel_check
from .cluster_record import ClusterRecord, ClusterRecorder, recording_clusters

install_channel_check()  # build-time neck / head channel check (channel_check.py)

__all__ = ['ClusterRecord', 'ClusterRecorder', 'recording_clusters']
