from .context_cluster import ContextClusterLayer

__all__ = ['ContextClusterLayer']
