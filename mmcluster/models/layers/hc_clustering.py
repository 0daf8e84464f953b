"""The clustering module of HCFormer ("clustering after downsampling", paper Eq. 3 with the local attention of
Sec. 2.4 / Appendix B). The L1 regulariser on its scale is a loss:
:class:`~mmcluster.models.losses.HCScaleLoss`. Equations, symbols and deviations: ``docs/hcformer.md``.

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949).

Given a fine map ``F`` (``[B, C_f, H, W]``) and the map ``F_d`` that a stride-2 downsampling of the backbone
made from it (``[B, C_c, ceil(H/2), ceil(W/2)]``), the module computes

* ``f_p = W_f LN(F)_p / ||W_f LN(F)_p||`` and ``c_q = W_c LN(F_d)_q / ||W_c LN(F_d)_q||``: LayerNorm over
  channels, a 1x1 convolution without bias to ``embed_dims`` (128 in the paper; xavier-normal init) and L2
  normalisation per pixel, so that inner products are cosine similarities;
* for each fine pixel ``p`` and each of its 9 candidate cells ``q(p) + o_k`` (the 3x3 neighbourhood of the
  parent cell ``q(p) = (floor(i/2), floor(j/2))``; order ``k = 3 (dy + 1) + (dx + 1)``, see
  :mod:`~mmcluster.models.layers.hc_decode`) the similarity ``sim_kp = <f_p, c_{q(p) + o_k}>``;
* the soft assignment ``A_kp = softmax_k(sim_kp / (|s| + 1e-8))`` with one learnable scalar ``s`` per module
  (the parameter ``scale``, init 0.1; the official code calls it ``temp``, and the converter
  ``tools/model_converters/hcformer2mmcluster.py`` maps it). Candidates outside the coarse map get logit
  ``finfo.min`` before the softmax, i.e. weight exactly 0. As ``s -> 0`` the assignment becomes the hard
  arg-max assignment of Eq. 2.

Deviations from the official ``Clustering`` (each changes nothing for the even-sized maps the official code
accepts, except where said):

* off-map candidates are masked by position; the official code masks every candidate whose similarity is
  exactly 0 (``-1e12`` added), which also catches an on-map candidate orthogonal to the pixel (measure zero);
* odd map sizes work (the official 2x2 unfold / fold needs even sizes);
* ``scale`` is a 0-d parameter (official ``temp``: shape ``[1]``; the converter reshapes it);
* the LayerNorm is folded into the projection (below): equal up to float rounding.

Output: ``A`` of shape ``[B, 9, H, W]``, ``sum_k A = 1``. Odd ``H`` / ``W`` are handled (the coarse map is
``ceil(H/2) x ceil(W/2)``, as a padded stride-2 convolution or patch merging produces); any other coarse
size or channel count raises a ValueError.

Implementation: the LayerNorm is folded into the projection (``W LN(x) = (W' x - (W' 1) mu) / sigma + W b``
with ``W' = W diag(gamma)``), so the embedding is one GEMM on the raw NCHW map (written channels last) plus
per-pixel channel statistics -- no normalised or channels-last copy of the C-channel input is made or kept for
the backward. Only the E-channel fine embedding is permuted into a window-major layout ``[B, Hc, Wc, 4, E]``
on a grid of padded width; the 9 similarities of a window are then 3 batched ``[4, E] x [E, 3]`` products with
overlapping strided views of the zero-padded coarse embedding (``_LocalCorrelation``, hand-written backward):
no 9x unfolded copy of either map and no 9x elementwise product. Compared with the official unfold / bmm /
fold form (forward and training step): ``tools/benchmark/clustering_ops.py --only hc_clustering``; memory:
``tools/benchmark/hc_decode_memory.py --op clustering``.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmcluster.models.utils.cluster_record import ClusterRecorder
from mmcluster.registry import MODELS, register_module
from .hc_decode import HC_OFFSETS, NUM_CANDIDATES, hc_coarse_size, hc_parent_index


def _channel_moments(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-pixel ``E_c[x]`` and ``E_c[x^2]`` of an NCHW map (``[B, 1, H, W]`` each), accumulated channel by
    channel into cache-resident sums: ``x.square().mean(1)`` would write and read a full-size square (the
    C-channel input is the largest tensor of the module), ``torch.var_mean(x, 1)`` is ~4x slower on the CPU.
    Sums in float32 also for half-precision inputs (as torch's own reductions accumulate)."""
    mean = x.new_zeros(x.shape[0], 1, *x.shape[2:], dtype=torch.promote_types(x.dtype, torch.float32))
    square = torch.zeros_like(mean)
    for c in range(x.shape[1]):
        channel = x[:, c:c + 1]
        mean.add_(channel)
        square.addcmul_(channel, channel)
    return mean.div_(x.shape[1]).to(x.dtype), square.div_(x.shape[1]).to(x.dtype)


def _channels_last_product(x: Tensor, weight: Tensor) -> Tensor:
    """``W' x`` of an NCHW map ``x [B, C, H, W]`` and ``W' [E, C]``, written channels last: ``[B, HW, E]``."""
    b, c, h, w = x.shape
    return torch.bmm(x.reshape(b, c, h * w).transpose(1, 2), weight.t().to(x.dtype).expand(b, c, -1))


class _FoldedProjection(torch.autograd.Function):
    """``(W' x [B, HW, E], E_c[x], E_c[x^2])`` of an NCHW map ``x`` and ``W' [E, C]``: the GEMM of the folded
    LayerNorm projection (written channels last) and the per-pixel channel moments (:func:`_channel_moments`),
    with one backward for both.

    Autograd's own backward of the channels-last product returns ``dL/dx`` as a transposed (channels-last) view,
    which the caller's NCHW gradient then needs copied (a full-size transposing copy, the slowest pass of the
    training step) before it is added to the moments' gradient (another full-size pass). Here
    ``dL/dx = (g_mean + 2 x g_sq) / C + W'^T dL/dy^T`` is written in NCHW directly: one elementwise pass, then
    the product accumulated into it (``baddbmm_``).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor):
        ctx.save_for_backward(x, weight)
        return (_channels_last_product(x, weight), ) + _channel_moments(x)

    @staticmethod
    def backward(ctx, grad_y: Tensor, grad_mean: Tensor, grad_square: Tensor):
        x, weight = ctx.saved_tensors
        b, c, h, w = x.shape
        dtype = x.dtype
        if grad_mean is None:
            grad_mean = x.new_zeros(b, 1, h, w)
        if grad_square is None:
            grad_square = x.new_zeros(b, 1, h, w)
        grad_x = torch.addcmul(grad_mean.to(dtype) / c, x, grad_square.to(dtype), value=2.0 / c)
        grad_weight = None
        if grad_y is not None:
            grad_y = grad_y.to(dtype)
            grad_x.view(b, c, h * w).baddbmm_(weight.to(dtype).t().expand(b, c, -1), grad_y.transpose(1, 2))
            if ctx.needs_input_grad[1]:  # sum_b dy_b^T x_b^T, [E, C]
                grad_weight = torch.bmm(grad_y.transpose(1, 2), x.reshape(b, c, h * w).transpose(1, 2)).sum(0)
                grad_weight = grad_weight.to(weight.dtype)
        return grad_x, grad_weight


def _candidate_rows(coarse: Tensor, row: int, cells: int, width: int) -> Tensor:
    """``[cells, 3, E]`` view of the flat padded coarse grid: for cell ``n`` the 3 candidates of the offset row
    ``dy = row - 1`` (``dx = -1, 0, 1``), flat rows ``n + row * width + (0, 1, 2)``. Consecutive cells overlap
    (a strided view, no copy; ``bmm`` reads it as is)."""
    e = coarse.shape[-1]
    return coarse.as_strided((cells, 3, e), (e, e, 1), coarse.storage_offset() + row * width * e)


def _local_correlation(fine: Tensor, coarse: Tensor, cells: int, width: int) -> Tensor:
    """The forward of :class:`_LocalCorrelation` (autograd's own backward, used when tracing: the jit tracer
    cannot record a custom Function called with Python ints)."""
    return torch.cat([torch.bmm(fine[:cells], _candidate_rows(coarse, row, cells, width).transpose(1, 2))
                      for row in range(3)], dim=-1)


class _LocalCorrelation(torch.autograd.Function):
    """``s[n, p, k] = <f[n, p], c[n + o_k]>`` on a flat grid of padded width: the 3x3 local correlation of
    the 4 fine pixels of window ``n`` with their 9 candidate cells, as 3 batched ``[4, E] x [E, 3]`` products
    (one per candidate row) that read the candidates through overlapping strided views, so neither the 9x
    candidate tensor of the unfold form nor a 9x elementwise product is ever made. Backward: 3 + 3 batched
    products and 9 shifted row additions.

    Layout: ``fine`` ``[R W', 4, E]`` and ``coarse`` ``[R W', E]`` (flattened ``[B, R, W', ...]`` grids of width
    ``W' = Wc + 2``); the coarse grid holds cell ``(a, b)`` at ``(a + 1, b + 1)`` with zeros around it, window
    ``(a, b)`` of the fine grid sits at ``(a, b)``. Only the first ``cells`` windows are computed (the caller
    leaves enough zero rows after the last map for the candidate views).
    """

    @staticmethod
    def forward(ctx, fine: Tensor, coarse: Tensor, cells: int, width: int) -> Tensor:
        ctx.save_for_backward(fine, coarse)
        ctx.cells, ctx.width = cells, width
        return _local_correlation(fine, coarse, cells, width)

    @staticmethod
    def backward(ctx, grad: Tensor):
        fine, coarse = ctx.saved_tensors
        cells, width = ctx.cells, ctx.width
        grad = grad.to(fine.dtype)  # under autocast the forward's bmm ran (and returned) in lower precision
        rows = [grad[..., 3 * row:3 * row + 3] for row in range(3)]  # [cells, 4, 3] per candidate row
        grad_fine = grad_coarse = None
        if ctx.needs_input_grad[0]:
            grad_fine = torch.zeros_like(fine)
            for row in range(3):
                grad_fine[:cells].baddbmm_(rows[row], _candidate_rows(coarse, row, cells, width))
        if ctx.needs_input_grad[1]:
            grad_coarse = torch.zeros_like(coarse)
            for row in range(3):
                per_candidate = torch.bmm(rows[row].transpose(1, 2), fine[:cells])  # [cells, 3, E]
                for dx in range(3):
                    start = row * width + dx
                    grad_coarse[start:start + cells].add_(per_candidate[:, dx])
        return grad_fine, grad_coarse, None, None


@register_module(MODELS)
class HCClustering(BaseModule, ClusterRecorder):
    """HCFormer clustering module: soft assignment of a fine map's pixels to 9 candidate coarse cells.

    Cluster records (:func:`~mmcluster.models.utils.cluster_record.recording_clusters`): one ``'hard'`` record
    per call, ``assignment[b, n]`` = the flat index ``qy * Wc + qx`` of the coarse-map cell that fine pixel
    ``n`` (row-major on the ``H x W`` fine grid) gives the largest weight; ``spatial_shape = (H, W)``,
    ``cluster_shape = (Hc, Wc)``, ``num_clusters = Hc * Wc``, ``meta = {'scale': s}``. The neck adds
    ``parent`` (the record of the next-coarser level, whose fine grid is this coarse grid) so that a
    visualiser can compose the levels into partitions of the finest grid.

    Args:
        fine_channels: channels ``C_f`` of the fine map (before the downsampling).
        coarse_channels: channels ``C_c`` of the coarse map (after the downsampling).
        embed_dims: ``C_F``, the dimension of the cosine-similarity space. Defaults to 128 (paper).
        init_scale: initial value of the scale ``s`` (parameter ``scale``). Defaults to 0.1 (paper, Appendix D;
            official HCSwin 0.1, official HCResNet class default 0.05 overridden to 0.1 by its configs).
        eps: added to ``|s|`` in the softmax temperature. Defaults to 1e-8 (official code).
        norm_eps: LayerNorm epsilon. Defaults to 1e-5 (``nn.LayerNorm``'s default; the official value is
            not documented).
        init_cfg: mmengine init config. The projections are xavier-normal initialised at construction.

    Parameter names follow the official code (``fine_norm``, ``coarse_norm``, ``fine_emb``, ``coarse_emb``)
    except ``scale`` (official ``temp``, shape ``[1]``), which the converter renames and reshapes.
    Deviations: see the module docstring.
    """

    def __init__(self, fine_channels: int, coarse_channels: int, embed_dims: int = 128,
                 init_scale: float = 0.1, eps: float = 1e-8, norm_eps: float = 1e-5,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fine_channels = fine_channels
        self.coarse_channels = coarse_channels
        self.embed_dims = embed_dims
        self.eps = eps
        self.fine_norm = nn.LayerNorm(fine_channels, eps=norm_eps)
        self.coarse_norm = nn.LayerNorm(coarse_channels, eps=norm_eps)
        self.fine_emb = nn.Conv2d(fine_channels, embed_dims, 1, bias=False)
        self.coarse_emb = nn.Conv2d(coarse_channels, embed_dims, 1, bias=False)
        #: the paper's scale ``s`` (a 0-d parameter)
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        # (own name, parent's name) relative to the owner that links the levels (see set_record_parent)
        self._record_link = None
        self.reset_parameters()

    def set_record_parent(self, own_name: str, parent_name: str) -> None:
        """Link this module's cluster records to those of ``parent_name`` (the module clustering the next-coarser
        level), both names relative to a common owner (e.g. ``'clustering_layers.2'``, ``'clustering_layers.1'``
        inside the neck); the record's ``parent`` is then the parent's qualified name in the recorded model."""
        self._record_link = (own_name, parent_name)

    def _record_parent(self):
        if self._record_link is None:
            return None
        own, parent = self._record_link
        name = self._cluster_sink[0]
        if name == own:
            return parent
        return name[:-len(own)] + parent if name.endswith('.' + own) else None

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.fine_emb.weight)
        nn.init.xavier_normal_(self.coarse_emb.weight)

    @staticmethod
    def _embed(x: Tensor, norm: nn.LayerNorm, proj: nn.Conv2d) -> Tensor:
        """``normalize(W LN(x))`` per pixel, ``[B, C, H, W] -> [B, E, H, W]`` (a view of a channels-last
        tensor), without a normalised or channels-last copy of x.

        With ``LN(x) = (x - mu) / sigma * g + b`` (per-pixel mean / std over channels) and ``W' = W diag(g)``:
        ``W LN(x) = (W' x - (W' 1) mu) / sigma + W b``: one GEMM on the raw NCHW map (read transposed, written
        channels last) plus per-pixel statistics, so neither a channels-last copy nor a normalised copy of the
        C-channel input is made or kept for the backward.
        """
        b, c, h, w = x.shape
        weight = proj.weight.flatten(1)  # [E, C]
        w_g = weight * norm.weight  # W' = W diag(g)
        # E[x] and E[x^2] (float32 error vs LN in float64: 2e-7 for zero-mean inputs, 2e-6 / 1.5e-5 / 1.4e-4 for
        # a DC offset of 10 / 100 / 1000 channel std, unit embeddings)
        if torch.jit.is_tracing():  # a plain graph for tracers (get_flops, ONNX): same values
            mean, square = x.mean(1, keepdim=True), x.square().mean(1, keepdim=True)
            y = _channels_last_product(x, w_g)  # [B, HW, E]
        else:
            y, mean, square = _FoldedProjection.apply(x, w_g)
        rstd = torch.rsqrt((square - mean.square()).clamp_min(0) + norm.eps).view(b, h * w, 1)
        y = torch.addcmul(weight @ norm.bias, torch.addcmul(y, mean.view(b, h * w, 1), w_g.sum(1), value=-1), rstd)
        return F.normalize(y, dim=-1).view(b, h, w, -1).permute(0, 3, 1, 2)

    def similarity(self, fine: Tensor, coarse: Tensor) -> Tensor:
        """Cosine similarities ``s_kp`` in window-major layout ``[B, Hc, Wc, 4, 9]`` (window pixel
        ``2 * di + dj``); candidates outside the coarse map have similarity exactly 0."""
        self._check(fine, coarse)
        b, _, h, w = fine.shape
        hc, wc = coarse.shape[-2:]
        rows, width = hc + 3, wc + 2  # flat grids (see _LocalCorrelation): 1 zero row above, 2 below
        f = self._embed(fine, self.fine_norm, self.fine_emb).permute(0, 2, 3, 1)  # [B, H, W, E], contiguous
        if (2 * hc, 2 * wc) != (h, w):  # odd size: pad the last row / column (cropped from the output)
            f = F.pad(f, (0, 0, 0, 2 * wc - w, 0, 2 * hc - h))
        # [B, Hc, 2, Wc, 2, E] -> [B, Hc, Wc, 2, 2, E], padded to the [B, rows, width] grid: one copy
        f = F.pad(f.view(b, hc, 2, wc, 2, -1).permute(0, 1, 3, 2, 4, 5), (0, 0, 0, 0, 0, 0, 0, 2, 0, 3))
        c = F.pad(self._embed(coarse, self.coarse_norm, self.coarse_emb).permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 2))
        e = c.shape[-1]
        cells = (b - 1) * rows * width + hc * width  # up to the last map's last window row
        correlate = _local_correlation if torch.jit.is_tracing() else _LocalCorrelation.apply
        sims = correlate(f.reshape(b * rows * width, 4, e), c.reshape(b * rows * width, e), cells, width)
        sims = F.pad(sims, (0, 0, 0, 0, 0, b * rows * width - cells)).view(b, rows, width, 4, NUM_CANDIDATES)
        return sims[:, :hc, :wc]

    def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:
        """Soft assignment ``A`` (``[B, 9, H, W]``) of ``fine`` (``[B, C_f, H, W]``) onto ``coarse``
        (``[B, C_c, ceil(H/2), ceil(W/2)]``)."""
        b, _, h, w = fine.shape
        hc, wc = coarse.shape[-2:]
        sim = self.similarity(fine, coarse)  # [B, Hc, Wc, 4, 9]
        logits = sim / (self.scale.abs() + self.eps)
        valid = self._valid(hc, wc, sim.device)  # [Hc, Wc, 1, 9]
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        assign = logits.softmax(-1)
        # [B, Hc, Wc, 2, 2, 9] -> [B, 9, Hc, 2, Wc, 2] -> [B, 9, 2Hc, 2Wc] -> crop to [B, 9, H, W]
        assign = assign.view(b, hc, wc, 2, 2, NUM_CANDIDATES).permute(0, 5, 1, 3, 2, 4)
        assign = assign.reshape(b, NUM_CANDIDATES, 2 * hc, 2 * wc)[:, :, :h, :w]
        if self.is_recording_clusters:
            self.record_clusters(hc_parent_index(assign).flatten(1), (h, w), hc * wc, kind='hard',
                                 cluster_shape=(hc, wc), parent=self._record_parent(),
                                 meta=dict(scale=float(self.scale.detach().abs())))
        return assign

    @staticmethod
    def _valid(hc: int, wc: int, device) -> Tensor:
        qy = torch.arange(hc, device=device)
        qx = torch.arange(wc, device=device)
        cols = [((qy + dy >= 0) & (qy + dy < hc))[:, None] & ((qx + dx >= 0) & (qx + dx < wc))[None, :]
                for dy, dx in HC_OFFSETS]
        return torch.stack(cols, dim=-1)[:, :, None, :]

    def _check(self, fine: Tensor, coarse: Tensor) -> None:
        if fine.dim() != 4 or coarse.dim() != 4:
            raise ValueError(f'fine and coarse must be [B, C, H, W] maps, got {tuple(fine.shape)} and '
                             f'{tuple(coarse.shape)}')
        if fine.shape[0] != coarse.shape[0]:
            raise ValueError(f'batch sizes differ: fine {fine.shape[0]}, coarse {coarse.shape[0]}')
        if fine.shape[1] != self.fine_channels:
            raise ValueError(f'fine map has {fine.shape[1]} channels, the module expects {self.fine_channels}')
        if coarse.shape[1] != self.coarse_channels:
            raise ValueError(f'coarse map has {coarse.shape[1]} channels, the module expects '
                             f'{self.coarse_channels}')
        expected = hc_coarse_size(*fine.shape[-2:])
        if tuple(coarse.shape[-2:]) != expected:
            raise ValueError(f'a fine map of size {tuple(fine.shape[-2:])} needs a coarse map of size {expected} '
                             f'(ceil of half), got {tuple(coarse.shape[-2:])}')

    def extra_repr(self) -> str:
        return (f'fine_channels={self.fine_channels}, coarse_channels={self.coarse_channels}, '
                f'embed_dims={self.embed_dims}, eps={self.eps}')
