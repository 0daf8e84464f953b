"""From cluster records to label maps on the image: one panel per record, head and hierarchy level.

:class:`~mmcluster.models.utils.cluster_record.ClusterRecord` s (what any mmcluster model emits inside
:func:`~mmcluster.models.utils.cluster_record.recording_clusters`) become :class:`Panel` s:

* a record whose assignment has a head axis (``[B, E, N]``) gives one panel per head;
* a record with a ``parent`` is the bottom of a hierarchy (HCFormer: fine pixels -> coarse positions, whose
  own clustering is the parent record): it gives one panel per level, ``depth`` 0 = its own clusters,
  ``depth`` k = composed through k parents (the cluster of the cluster of ... of each token), all drawn on its
  own (finest) grid; a record that is the parent of another drawn record is shown only through that
  composition;
* ``meta['centers']`` (``[B, (E,) M]`` token indices), when a record has it, is marked at depth 0;
  ``meta['stride']`` places the grid on the input exactly (else it is inferred, see :mod:`.drawing`).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from mmcluster.models.utils.cluster_record import ClusterRecord

from .drawing import center_marks, grid_to_pixels


@dataclass
class Panel:
    """One cluster map.

    Attributes:
        title: what it shows, e.g. ``'neck.clustering_layers.2 <- neck.clustering_layers.1'``.
        record: the name of the record it was drawn from (the bottom of the chain).
        head: the head (records with a head axis), else None.
        depth: 0 = the record's own clusters; k = composed through k parents.
        cluster_source: the name of the record whose clusters these are (``record`` at depth 0).
        step: the record's ``step``.
        grid: the token grid ``(h, w)`` of ``grid_labels``.
        grid_labels: ``[h, w]`` cluster ids on the grid.
        labels: ``[H, W]`` cluster ids on the image's pixels.
        num_clusters: distinct clusters on the grid.
        centers: ``[H, W]`` bool centre marks, or None.
        meta: the record's ``meta`` (without tensors).
        scores: filled by the caller (e.g. ``ue`` / ``asa`` against ground truth).
    """
    title: str
    record: str
    head: Optional[int]
    depth: int
    cluster_source: str
    step: int
    grid: tuple
    grid_labels: np.ndarray
    labels: np.ndarray
    num_clusters: int
    centers: Optional[np.ndarray] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    scores: Dict[str, float] = field(default_factory=dict)

    def summary(self) -> Dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return dict(title=self.title, record=self.record, head=self.head, depth=self.depth,
                    cluster_source=self.cluster_source, step=self.step, grid=list(self.grid),
                    num_clusters=self.num_clusters, meta=self.meta, **self.scores)


def select_records(records: Sequence[ClusterRecord], select: Optional[Sequence[str]] = None) -> List[ClusterRecord]:
    """The records whose name contains any of ``select`` (all when empty); ValueError naming the records if none."""
    if not select:
        return list(records)
    chosen = [r for r in records if any(s in r.name for s in select)]
    if not chosen:
        names = sorted({r.name for r in records})
        raise ValueError(f'no cluster record matches {list(select)}; the model recorded: {names}')
    return chosen


def _per_image(record: ClusterRecord, batch_index: int) -> torch.Tensor:
    """``[(E,) N]`` hard cluster ids of one image (argmax for soft records)."""
    ids = record.assignment if record.kind == 'hard' else record.assignment.argmax(dim=-1)
    return ids[batch_index].detach().cpu().long()


def _find_parent(record: ClusterRecord, records: Sequence[ClusterRecord]) -> ClusterRecord:
    same = [r for r in records if r.name == record.parent]
    if not same:
        raise ValueError(f'record {record.name!r} names the parent {record.parent!r}, which recorded nothing '
                         f'(recorded: {sorted({r.name for r in records})})')
    same_step = [r for r in same if r.step == record.step]
    return (same_step or same)[-1]


def _chain(record: ClusterRecord, records: Sequence[ClusterRecord]) -> List[ClusterRecord]:
    chain = [record]
    while chain[-1].parent is not None:
        parent = _find_parent(chain[-1], records)
        if any(parent is r for r in chain):
            raise ValueError(f'cluster records form a cycle: {[r.name for r in chain]} -> {parent.name}')
        child = chain[-1]
        tokens = int(np.prod(parent.spatial_shape))
        if child.num_clusters != tokens:
            raise ValueError(f'record {child.name!r} has {child.num_clusters} clusters but its parent {parent.name!r} '
                             f'has {tokens} tokens (grid {parent.spatial_shape}): the clusters must be the '
                             f"parent's tokens")
        if child.cluster_shape is not None and tuple(child.cluster_shape) != tuple(parent.spatial_shape):
            raise ValueError(f'record {child.name!r} has cluster_shape {tuple(child.cluster_shape)} but its parent '
                             f'{parent.name!r} has the grid {parent.spatial_shape}')
        chain.append(parent)
    return chain


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (int, float, str, bool, type(None)))


def _plain_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in meta.items() if _plain(v)}


def _short(name: str) -> str:
    return name or '<model>'


def record_panels(records: Sequence[ClusterRecord], input_hw: Sequence[int], image_hw: Optional[Sequence[int]] = None,
                  select: Optional[Sequence[str]] = None, heads: Optional[Sequence[int]] = None,
                  batch_index: int = 0, centers: bool = True) -> List[Panel]:
    """Label maps of the records on the image (see the module docstring).

    Args:
        records: what :func:`~mmcluster.models.utils.cluster_record.recording_clusters` collected.
        input_hw: the size of the model's input tensor (the image padded by the data preprocessor).
        image_hw: the image's size (the top-left part of the input); default ``input_hw``.
        select: keep the records whose name contains any of these substrings (default: all).
        heads: the heads to draw of records with a head axis (negative from the end; default: all).
        batch_index: the image of the batch.
        centers: mark ``meta['centers']`` where records have them.

    Returns:
        The panels, in record order (per record: heads in order, then depth 0, 1, ...).
    """
    chosen = select_records(records, select)
    parents = {r.parent for r in chosen if r.parent is not None}
    seen: Dict[tuple, int] = {}
    panels: List[Panel] = []
    for record in chosen:
        if record.name in parents:
            continue  # shown through the composition of the chosen record that names it as its parent
        # one module may record several clusterings per step (e.g. one per scale): number them, show the meta
        occurrence = seen[(record.name, record.step)] = seen.get((record.name, record.step), -1) + 1
        repeated = sum(r.name == record.name and r.step == record.step for r in chosen) > 1
        if len(record.spatial_shape) != 2:
            raise ValueError(f'record {record.name!r} has a {len(record.spatial_shape)}-D token grid '
                             f'{record.spatial_shape}; only 2-D grids can be drawn (deselect it with --select)')
        chain = _chain(record, records)
        ids = _per_image(record, batch_index)
        head_ids = [None] if ids.dim() == 1 else list(range(ids.shape[0]))
        if heads is not None and ids.dim() == 2:
            num = ids.shape[0]
            bad = [e for e in heads if not -num <= e < num]
            if bad:
                raise ValueError(f'record {record.name!r} has {num} heads, got heads {bad}')
            head_ids = sorted({e % num for e in heads})
        h, w = record.spatial_shape
        stride = record.meta.get('stride') if isinstance(record.meta.get('stride'), int) else None
        cells = grid_to_pixels(np.arange(h * w).reshape(h, w), input_hw, image_hw, stride)
        for head in head_ids:
            current = ids if head is None else ids[head]
            for depth, source in enumerate(chain):
                if depth > 0:
                    parent_ids = _per_image(source, batch_index)
                    if parent_ids.dim() == 2:  # a parent with heads: follow the same head
                        parent_ids = parent_ids[0 if head is None else head]
                    current = parent_ids[current]
                grid_labels = current.reshape(h, w).numpy()
                marks = None
                if centers and depth == 0 and record.meta.get('centers') is not None:
                    c = torch.as_tensor(record.meta['centers'])[batch_index]
                    c = c if head is None or c.dim() == 1 else c[head]
                    marks = center_marks(c.cpu().numpy(), (h, w), cells)
                title = _short(record.name) + ('' if head is None else f' head {head}')
                if record.step:
                    title += f' step {record.step}'
                if repeated:
                    scalars = ', '.join(f'{k} {v:g}' if isinstance(v, float) else f'{k} {v}'
                                        for k, v in record.meta.items() if isinstance(v, (int, float, str)))
                    title += f' #{occurrence}' + (f' ({scalars})' if scalars else '')
                if depth:
                    title += f' <- {_short(source.name)}'
                panels.append(Panel(title=title, record=record.name, head=head, depth=depth,
                                    cluster_source=source.name, step=record.step, grid=(h, w),
                                    grid_labels=grid_labels, labels=grid_labels.reshape(-1)[cells],
                                    num_clusters=int(len(np.unique(grid_labels))), centers=marks,
                                    meta=_plain_meta(source.meta)))
    return panels
