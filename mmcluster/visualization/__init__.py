"""Cluster maps of any mmcluster model (imported on demand, not by ``import mmcluster``).

The command is ``tools/visualization/cluster_map.py`` (:mod:`.cluster_map`). Pieces: :mod:`.inference` (model
from a config, weights, the data preprocessor, records), :mod:`.panels` (records -> label maps on the image:
heads, hierarchies), :mod:`.drawing` and :mod:`.palette` (painting), :mod:`.segmentation_metrics`
(undersegmentation error, achievable segmentation accuracy, leakage against ground truth).
"""
from .cluster_map import ClusterMap, cluster_map, draw_cluster_map
from .drawing import boundary_mask, draw_boundaries, draw_mask, grid_to_pixels, infer_stride, overlay_clusters
from .palette import cluster_colors, distinct_colors
from .panels import Panel, record_panels, select_records
from .segmentation_metrics import read_gt, undersegmentation

__all__ = [
    'ClusterMap', 'cluster_map', 'draw_cluster_map', 'boundary_mask', 'draw_boundaries', 'draw_mask',
    'grid_to_pixels', 'infer_stride', 'overlay_clusters', 'cluster_colors', 'distinct_colors', 'Panel',
    'record_panels', 'select_records', 'read_gt', 'undersegmentation'
]
