"""Context-cluster token mixer of Context Clusters (CoC).

Paper: Xu Ma et al., "Image as Set of Points", ICLR 2023, Sec. 3.2 (Eq. 1-2) and Sec. 3.3 (region partition).
The symbols below are those of ``docs/context_cluster.md``, which also lists every deviation and its switch.

For one head and one region holding the points ``n = 1..N`` (features ``x_n``), the layer computes

* similarity space and value space (1x1 projections): ``x'_n = W_f x_n``, ``v_n = W_v x_n``;
* centres ``c_m`` and value centres ``v^c_m`` (``m = 1..M``, ``M = p_h * p_w``) by adaptive average pooling of
  ``x'`` and ``v`` over the region, with the bins of :class:`torch.nn.AdaptiveAvgPool2d`:
  bin ``i`` of a side of length ``S`` pooled to ``p`` is ``[floor(i*S/p), ceil((i+1)*S/p))`` (bins overlap when
  ``p`` does not divide ``S``, e.g. 7 -> 2 gives ``[0, 4)`` and ``[3, 7)``);
* similarity ``s_mn = sigmoid(beta + alpha * cos(c_m, x'_n))`` with scalar ``alpha`` (init 1) and ``beta``
  (init 0) shared by all heads;
* hard assignment ``a_mn = 1[m = argmax_m' s_m'n]`` and ``s^_mn = s_mn * a_mn``;
* aggregation (paper Eq. 1) ``g_m = (v^c_m + sum_n s^_mn v_n) / (1 + sum_n s^_mn)``  (``norm_by='sim'``),
  or with the denominator ``1 + sum_n a_mn`` of the official code before 2023-05-31, with which the first
  released checkpoints were trained (``norm_by='mask'``);
* dispatch (paper Eq. 2, before its FC) ``y_n = sum_m s^_mn g_m``;

then merges regions and heads (heads are contiguous channel blocks) and applies the FC ``W_proj`` (1x1 conv).
The residual connection of Eq. 2 is the block's (see the backbone). Aggregation and dispatch are batched
matrix products (``bmm``), not broadcasts.

Any input size: the official code splits the map into ``fold_h x fold_w`` equal regions and asserts
divisibility. Here the regions are **uneven** when the size is not divisible: along a side of length ``S``
split into ``f`` regions, region ``k`` covers ``[floor(k*S/f), floor((k+1)*S/f))`` (sizes ``floor(S/f)`` or
``ceil(S/f)``); if ``S < f`` the side is split into ``S`` regions of one row/column (never an empty region).
Each region is then pooled with adaptive-pool bins computed on **its own size**, so every centre is the mean
of real points only; there is no padding content anywhere. Internally the regions are gathered into a
``[regions, L_max]`` layout; the slots beyond a smaller region's size are masked out of the pooling weights,
of ``s^`` and of ``a`` (so they never enter a centre, a sum or a count) and are dropped when scattering back.
When the size is divisible the result equals the official (equal-region) computation exactly.
Compared with pad-then-crop (pad the map to a multiple of the fold, mask the padding): there the bins of the
last regions would be laid out on the padded size, so their centres would average fewer real points (and a
bin lying wholly in the padding would give an empty centre); with uneven regions every region has exactly
``p_h x p_w`` centres placed evenly over real points. Each side is split independently (the official code
partitions only when both folds are > 1; the two agree for the square folds of all official variants).

Implementation: the 1x1 convolutions ``f``, ``v``, ``proj`` (kept as ``nn.Conv2d`` so that official
state_dicts load unchanged) are applied as linear maps on channels-last points that are first gathered into
the region layout; centres are one matrix product with the pooling weights. The region layout (index and
pooling tensors) is cached per (size, fold, proposal, device); it is always built outside inference mode, so
a first call under :func:`torch.inference_mode` does not poison later training steps at the same size.
"""
from functools import lru_cache
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcluster.models.utils.cluster_record import ClusterRecorder
from mmcluster.models.utils.pair import IntPair, to_pair


NORM_BY = ('sim', 'mask')
#: points from which the f|v projection runs as one product per head (:meth:`ContextClusterLayer._project_heads`;
#: measured on CoC-Tiny at 224: faster at 3136 and 784 points, about equal at 196, slower at 49)
_HEAD_MAJOR_MIN_POINTS = 512


def split_bounds(size: int, fold: int) -> List[int]:
    """Region boundaries along one side: ``floor(k*size/f)`` for ``k = 0..f`` with ``f = min(fold, size)``."""
    f = min(fold, size)
    return [k * size // f for k in range(f + 1)]


def _adaptive_bins(sizes: torch.Tensor, p: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """AdaptiveAvgPool bins ``[floor(i*S/p), ceil((i+1)*S/p))`` for each region size S -> ``[R, p]`` each."""
    i = torch.arange(p)
    start = torch.div(i[None] * sizes[:, None], p, rounding_mode='floor')
    end = -torch.div(-(i[None] + 1) * sizes[:, None], p, rounding_mode='floor')  # ceil
    return start, end


def _side_pool(sizes: torch.Tensor, p: int, lmax: int) -> torch.Tensor:
    """Per-side averaging weights ``[R, p, lmax]``: 1/|bin| inside bin i of a region of size S, else 0."""
    start, end = _adaptive_bins(sizes, p)
    j = torch.arange(lmax)[None, None]
    inside = (j >= start[..., None]) & (j < end[..., None])
    return inside.double() / (end - start)[..., None].double()


def _layout(h: int, w: int, fold: Tuple[int, int], proposal: Tuple[int, int], device: torch.device):
    """Gather/scatter indices, validity mask and pooling matrices of the (possibly uneven) regions.

    Returns ``(gather, scatter, valid, pool, (f_h, f_w), lmax)``: ``gather [R*L]`` flat map positions of the
    region slots (clamped for invalid slots), ``scatter [h*w]`` slot of every map position, ``valid [R, L]``
    bool (``None`` when all regions have the same size), ``pool [R or 1, M, L]`` float64 (rows sum to 1),
    with ``R = f_h * f_w`` regions, ``L = lmax`` slots per region and ``M = p_h * p_w`` centres per region
    (row-major). Cached tensors are shared by every later call: they are created as normal tensors even when
    the first call runs under ``torch.inference_mode()`` (inference tensors cannot be saved for backward).
    Under ``torch.compile`` the layout is built inside the graph instead (it depends on the sizes only, so
    dynamo traces it without a graph break; dynamo does not trace through the cache).
    """
    if torch.compiler.is_compiling():
        return _build_layout.__wrapped__(h, w, fold, proposal, device)
    with torch.inference_mode(False), torch.no_grad():
        return _build_layout(h, w, fold, proposal, device)


def _side_regions(size: int, fold: int) -> Tuple[List[int], List[int], torch.Tensor, torch.Tensor]:
    """One side's region starts and sizes (Python ints), and for every position its region and its offset in it."""
    bounds = split_bounds(size, fold)
    starts, sizes = bounds[:-1], [b - a for a, b in zip(bounds, bounds[1:])]
    region = torch.tensor([r for r, n in enumerate(sizes) for _ in range(n)])  # [size]
    offset = torch.arange(size) - torch.tensor(starts)[region]
    return starts, sizes, region, offset


@lru_cache(maxsize=128)
def _build_layout(h: int, w: int, fold: Tuple[int, int], proposal: Tuple[int, int], device: torch.device):
    # every size below is a Python int, every tensor a function of them: no data-dependent step
    rb, rh, row_region, row_offset = _side_regions(h, fold[0])
    cb, rw, col_region, col_offset = _side_regions(w, fold[1])
    fh, fw = len(rh), len(rw)
    mh, mw = max(rh), max(rw)
    lmax = mh * mw
    # slot (i, j) of region (a, b) -> map position (rb[a] + i, cb[b] + j), clamped for invalid slots
    i = torch.arange(mh)
    j = torch.arange(mw)
    rows = torch.tensor(rb)[:, None] + i[None]  # [fh, mh]
    cols = torch.tensor(cb)[:, None] + j[None]  # [fw, mw]
    pos = rows.clamp(max=h - 1)[:, None, :, None] * w + cols.clamp(max=w - 1)[None, :, None, :]
    gather = pos.reshape(-1)  # [(fh fw mh mw)]
    valid_r = i[None] < torch.tensor(rh)[:, None]  # [fh, mh]
    valid_c = j[None] < torch.tensor(rw)[:, None]  # [fw, mw]
    valid = (valid_r[:, None, :, None] & valid_c[None, :, None, :]).reshape(fh * fw, lmax)
    # map position (y, x) -> its slot: region (row_region[y], col_region[x]), offsets within it
    scatter = (((row_region[:, None] * fw + col_region[None, :]) * mh + row_offset[:, None]) * mw
               + col_offset[None, :]).reshape(-1)
    # separable adaptive-pool weights on each region's own size
    prow = _side_pool(torch.tensor(rh), proposal[0], mh)  # [fh, ph, mh]
    pcol = _side_pool(torch.tensor(rw), proposal[1], mw)  # [fw, pw, mw]
    pool = prow[:, None, :, None, :, None] * pcol[None, :, None, :, None, :]  # [fh, fw, ph, pw, mh, mw]
    pool = pool.reshape(fh * fw, proposal[0] * proposal[1], lmax)
    uniform = len(set(rh)) == 1 and len(set(rw)) == 1
    if uniform:
        pool = pool[:1]
    return (gather.to(device), scatter.to(device), None if uniform else valid.to(device), pool.to(device),
            (fh, fw), lmax)


class ContextClusterLayer(nn.Module, ClusterRecorder):
    """Context-cluster token mixer (CoC, ICLR 2023, Sec. 3.2, Eq. 1-2), for any map size.

    Parameters are named as in the official code (``f``, ``v``, ``proj`` 1x1 convs; ``sim_alpha``,
    ``sim_beta`` of shape ``[1]``), so its state dicts load unchanged.

    Deviations from the official ``Cluster`` module (``docs/context_cluster.md`` lists them with their switches):

    * ``norm_by='sim'`` (default) is the paper's Eq. 1 and the official code since 2023-05-31;
      ``norm_by='mask'`` restores the ``1 + sum a`` denominator of the earlier code and checkpoints.
    * Sizes not divisible by the fold get uneven regions (the official code raises an AssertionError); a side
      shorter than its fold gets one region per row/column. At divisible sizes the result is the official one.
    * Each side is partitioned on its own (official: only when both folds are > 1); identical for the square
      folds of every official variant.
    * ``proposal`` / ``fold`` are ``(h, w)`` pairs; the official ``proposal_w`` / ``fold_w`` act on the height
      axis (its tensors are named ``[b, c, w, h]``), i.e. they are our first entries.
    * Ties of the arg-max assignment go to the lowest centre index (the official ``max`` leaves them
      unspecified); they do not occur outside constructed inputs.

    Cluster records (:mod:`mmcluster.models.utils.cluster_record`): inside ``recording_clusters`` every
    forward records a ``'hard'`` assignment ``[B, E, H*W]`` on the layer's ``H x W`` grid: for every head and
    point the global id ``region * M + m`` of its centre, regions numbered row-major over the ``f_h x f_w``
    grid actually used and centres row-major over ``p_h x p_w`` within a region; ``num_clusters = R * M``,
    ``meta = {'regions': (f_h, f_w), 'proposal': (p_h, p_w)}``.

    Args:
        dim: input / output channels C.
        heads: number of heads E.
        head_dim: channels d per head (similarity and value space).
        proposal: centres per region per side ``p`` or ``(p_h, p_w)`` (``M = p_h * p_w``).
        fold: regions per side ``f`` or ``(f_h, f_w)``; ``1`` = no partition. Non-divisible maps get uneven
            regions (see the module docstring); a side shorter than its fold gets one region per row/column.
        norm_by: aggregation denominator, ``'sim'`` -> ``1 + sum s^`` (paper Eq. 1), ``'mask'`` -> ``1 + sum a``
            (official code before 2023-05-31).
    """

    def __init__(self,
                 dim: int,
                 heads: int = 4,
                 head_dim: int = 24,
                 proposal: IntPair = 2,
                 fold: IntPair = 2,
                 norm_by: str = 'sim') -> None:
        super().__init__()
        if norm_by not in NORM_BY:
            raise ValueError(f'norm_by must be one of {NORM_BY}, got {norm_by!r}')
        self.dim = dim
        self.heads = heads
        self.head_dim = head_dim
        self.proposal = to_pair(proposal, 'proposal')
        self.fold = to_pair(fold, 'fold')
        self.norm_by = norm_by
        inner = heads * head_dim
        self.f = nn.Conv2d(dim, inner, 1)
        self.v = nn.Conv2d(dim, inner, 1)
        self.proj = nn.Conv2d(inner, dim, 1)
        self.sim_alpha = nn.Parameter(torch.ones(1))
        self.sim_beta = nn.Parameter(torch.zeros(1))

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, heads={self.heads}, head_dim={self.head_dim}, proposal={self.proposal}, '
                f'fold={self.fold}, norm_by={self.norm_by!r}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W]`` -> ``[B, C, H, W]``."""
        B, C, H, W = x.shape
        out = self.forward_tokens(x.flatten(2).transpose(1, 2), (H, W))
        return out.transpose(1, 2).reshape(B, C, H, W)

    def region_layout(self, hw: Tuple[int, int], device: torch.device):
        """The cached region layout of an ``h x w`` map (see :func:`_layout`)."""
        return _layout(hw[0], hw[1], self.fold, self.proposal, device)

    def _project_heads(self, pts: torch.Tensor) -> torch.Tensor:
        """``f`` and ``v`` of the points ``[B, N, C]`` as ``[B, E, N, 2d]`` (per head: ``f`` then ``v``).

        Many points (the early stages): one product per head with head-major weights ``[E, C, 2d]`` writes that
        layout directly (stage 0 of CoC-Tiny: 0.36 against 0.69 ms for a linear map then the head-permuting
        copy); few points: one linear map then the copy (per-head products of a few dozen rows are slower).
        Traced (FLOP counter, ONNX export): always the linear map, which the counter books as one.
        """
        B, N, C = pts.shape
        E, d = self.heads, self.head_dim
        weight = torch.cat([self.f.weight, self.v.weight]).view(2, E, d, C)
        bias = torch.cat([self.f.bias, self.v.bias]).view(2, E, d)
        if N >= _HEAD_MAJOR_MIN_POINTS and not torch.jit.is_tracing():
            weight = weight.permute(1, 3, 0, 2).reshape(E, C, 2 * d)
            bias = bias.transpose(0, 1).reshape(E, 1, 2 * d)
            return torch.matmul(pts.unsqueeze(1), weight).add_(bias)
        fv = F.linear(pts, weight.view(2 * E * d, C), bias.view(-1))  # channels (f|v, head, d)
        return fv.view(B, N, 2, E, d).permute(0, 3, 1, 2, 4).reshape(B, E, N, 2 * d)

    def forward_tokens(self, tokens: torch.Tensor, hw: Tuple[int, int], region_order: bool = False) -> torch.Tensor:
        """Channels-last points ``[B, H*W, C]`` -> ``[B, H*W, C]`` (what the backbone's blocks use).

        Args:
            tokens: the map's points, row-major (``region_order=False``), or already gathered into the region
                layout ``[B, R*L, C]`` of :meth:`region_layout` (``region_order=True``; only for layouts
                without invalid slots, i.e. ``valid is None``), so that a stage gathers once for all its blocks.
            hw: the map size ``(H, W)``.
            region_order: whether ``tokens`` (and then the output) are in the region layout.
        """
        if self.norm_by not in NORM_BY:  # the attribute is set from checkpoints' meta; fail loudly
            raise ValueError(f'norm_by must be one of {NORM_BY}, got {self.norm_by!r}')
        B, _, C = tokens.shape
        H, W = hw
        E, d = self.heads, self.head_dim
        gather, scatter, valid, pool, (fh, fw), L = self.region_layout(hw, tokens.device)
        R = fh * fw
        M = pool.shape[1]
        regions = not (R == 1 and L == H * W)  # False: one region, the gather is the identity
        if region_order and valid is not None:
            raise ValueError('region_order=True needs a layout without invalid slots (equal regions)')

        # gathered into the region layout [B, R*L, C] (gathering C channels is cheaper than gathering the
        # 2*E*d projected ones); f and v as one linear map, to [B*E*R, L, 2d] (head, region, point; f|v)
        pts = tokens[:, gather] if regions and not region_order else tokens
        fv = self._project_heads(pts).view(B * E * R, L, 2 * d)
        # centres of both spaces at once: [B*E, R, M, 2d] = pool [R|1, M, L] @ points [B*E, R, L, 2d]
        centres = torch.matmul(pool.to(fv.dtype), fv.view(B * E, R, L, 2 * d)).view(B * E * R, M, 2 * d)
        xf, val = fv[..., :d], fv[..., d:]
        cf, cv = centres[..., :d], centres[..., d:]

        # cosine similarity; the points' norms divide the [b, L, M] product instead of normalising the
        # [b, L, d] points (F.normalize's eps: max(|x|, 1e-12))
        cos = torch.bmm(xf, F.normalize(cf, dim=-1).transpose(1, 2))  # [b, L, M]
        cos = cos / torch.linalg.vector_norm(xf, dim=-1, keepdim=True).clamp_min(1e-12)
        sim = torch.sigmoid(self.sim_beta + self.sim_alpha * cos)
        idx = sim.argmax(dim=-1, keepdim=True)  # [b, L, 1]; ties -> lowest centre index
        # a: [b, L, M] by a scatter (F.one_hot validates the indices: a min / max and a host sync per call)
        mask = torch.zeros_like(sim).scatter_(-1, idx, 1.0)
        idx = idx.squeeze(-1)
        if valid is not None:  # slots beyond a smaller region's size: out of every sum
            mask = (mask.view(B * E, R, L, M) * valid[:, :, None].to(mask.dtype)).view(B * E * R, L, M)
        s_hat = sim * mask
        denom = s_hat if self.norm_by == 'sim' else mask
        g = (torch.bmm(s_hat.transpose(1, 2), val) + cv) / (1.0 + denom.sum(dim=1).unsqueeze(-1))  # [b, M, d]
        y = torch.bmm(s_hat, g)  # [b, L, d]

        # merge heads -> [B, R*L, E*d], FC
        y = y.view(B, E, R * L, d).transpose(1, 2).reshape(B, R * L, E * d)
        out = F.linear(y, self.proj.weight.flatten(1), self.proj.bias)  # [B, R*L, C]
        if regions and not region_order:
            out = out[:, scatter]

        if self.is_recording_clusters:
            with torch.no_grad():
                gid = idx.view(B, E, R, L) + torch.arange(R, device=idx.device).view(1, 1, R, 1) * M
                gid = gid.view(B, E, R * L)
                if regions:
                    gid = gid[:, :, scatter]
            self.record_clusters(gid, (H, W), R * M, kind='hard',
                                 meta={'regions': (fh, fw), 'proposal': self.proposal})
        return out
