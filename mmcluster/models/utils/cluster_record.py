"""One way for every clustering module to expose its cluster assignments (for visualisation and tests).

A module that computes a clustering inherits :class:`ClusterRecorder` and, in ``forward``, calls
``self.record_clusters(...)`` with what it computed. Nothing is stored and nothing is computed unless a
caller asked for it with the :func:`recording_clusters` context manager, so the hot path pays one
attribute check::

    with recording_clusters(model) as records:
        model(inputs)
    for rec in records:            # in forward order
        rec.name                   # the module's qualified name in ``model``, e.g. 'backbone.stages.1.0.token_mixer'
        rec.labels()               # [B, *spatial_shape] hard cluster id of every token

A record is one of two kinds:

* ``'hard'``: ``assignment`` is a ``LongTensor [B, N]`` (or ``[B, E, N]`` with one map per head), the id in
  ``[0, num_clusters)`` of the cluster of each of the ``N = prod(spatial_shape)`` tokens laid out in row-major
  order over ``spatial_shape`` (the token grid at the module's stride);
* ``'soft'``: ``assignment`` is a float tensor ``[B, N, K]`` (or ``[B, E, N, K]``) of soft memberships over ``K``
  clusters; ``labels()`` is its argmax over the clusters.

``parent`` optionally names the record whose tokens the clusters are (HCFormer: a fine level's pixels are
assigned to positions of the next-coarser map; the visualiser composes such chains). ``cluster_shape`` gives
the grid of the clusters when they live on one (HCFormer's coarse map, Context Clusters' centres are not).
``step`` numbers repeated clusterings inside one module (e.g. the T iterations of a recurrent clustering or
kMaX's k-means iterations); ``meta`` holds anything model specific (e.g. ``{'ratio': 0.25}``). Two ``meta`` keys
are understood by the visualiser (:mod:`mmcluster.visualization`): ``'centers'`` (``[B, (E,) M]`` indices of
the tokens that are cluster centres, marked on the map) and ``'stride'`` (the grid's stride in input pixels,
when it cannot be inferred from the sizes).

The one consumer for pictures is ``tools/visualization/cluster_map.py CONFIG CHECKPOINT|none IMAGE``: it draws
one panel per record (per head, and per level of a ``parent`` chain) for any model that records.
"""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ['ClusterRecord', 'ClusterRecorder', 'recording_clusters']

KINDS = ('hard', 'soft')


@dataclass
class ClusterRecord:
    """One clustering computed during a forward pass (see the module docstring)."""
    name: str
    kind: str
    assignment: Tensor
    spatial_shape: Tuple[int, ...]
    num_clusters: int
    step: int = 0
    parent: Optional[str] = None
    cluster_shape: Optional[Tuple[int, ...]] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    def labels(self) -> Tensor:
        """Hard cluster ids laid out on the token grid: ``[B, (E,) *spatial_shape]``."""
        ids = self.assignment if self.kind == 'hard' else self.assignment.argmax(dim=-1)
        return ids.reshape(*ids.shape[:-1], *self.spatial_shape)


class ClusterRecorder:
    """Mixin for ``nn.Module`` s that compute a clustering (see the module docstring)."""

    _cluster_sink: Optional[Tuple[str, List[ClusterRecord]]] = None

    @property
    def is_recording_clusters(self) -> bool:
        """True inside :func:`recording_clusters` (compute what only the record needs only then)."""
        return self._cluster_sink is not None

    def record_clusters(self, assignment: Tensor, spatial_shape: Sequence[int], num_clusters: int,
                        kind: str = 'hard', **extra: Any) -> None:
        """Record one clustering if a caller is recording; a no-op otherwise.

        Args:
            assignment: ``[B, (E,) N]`` cluster ids (``kind='hard'``) or ``[B, (E,) N, K]`` memberships.
            spatial_shape: the token grid, ``prod(spatial_shape) == N``.
            num_clusters: the number of clusters ``K``.
            kind: ``'hard'`` or ``'soft'``.
            **extra: ``step``, ``parent``, ``cluster_shape``, ``meta`` of :class:`ClusterRecord`.
        """
        if self._cluster_sink is None:
            return
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
        name, records = self._cluster_sink
        n = assignment.shape[-1] if kind == 'hard' else assignment.shape[-2]
        expected = int(torch.Size(spatial_shape).numel())
        if n != expected:
            raise ValueError(f'{name}: {n} tokens recorded for a grid {tuple(spatial_shape)} of {expected}')
        records.append(ClusterRecord(name=name, kind=kind, assignment=assignment.detach(),
                                     spatial_shape=tuple(int(s) for s in spatial_shape),
                                     num_clusters=int(num_clusters), **extra))


@contextmanager
def recording_clusters(model: nn.Module) -> Iterator[List[ClusterRecord]]:
    """Collect the :class:`ClusterRecord` of every :class:`ClusterRecorder` in ``model`` during the block."""
    records: List[ClusterRecord] = []
    recorders = [(name, m) for name, m in model.named_modules() if isinstance(m, ClusterRecorder)]
    for name, module in recorders:
        module._cluster_sink = (name, records)
    try:
        yield records
    finally:
        for _, module in recorders:
            module._cluster_sink = None
