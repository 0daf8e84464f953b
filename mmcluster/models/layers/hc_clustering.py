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
with ``W' = W diag(gamma)``), so the embedding is one 1x1-conv GEMM on the raw NCHW map plus per-pixel channel
statistics -- no normalised or channels-last copy of the C-channel input is made or kept for the backward.
Only the E-channel fine embedding is permuted into a window-major layout ``[B, Hc, Wc, 4, E]``; each of the 9
candidates is then a view of the zero-padded coarse embedding broadcast over the 4 pixels of each window,
and ``s_k`` is a multiply + sum over the contiguous last dimension: 9 shifted products, no 9x unfolded copy
of either map, plain autograd. Compared with the unfold / einsum / fold form of the paper's Listing 1:
``tools/benchmark/hc_decode_memory.py --op clustering``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmcluster.models.utils.cluster_record import ClusterRecorder
from mmcluster.registry import MODELS, register_module
from .hc_decode import HC_OFFSETS, NUM_CANDIDATES, hc_coarse_size, hc_parent_index


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
        """``normalize(W LN(x))`` per pixel, ``[B, C, H, W] -> [B, E, H, W]``, without a normalised copy of x.

        With ``LN(x) = (x - mu) / sigma * g + b`` (per-pixel mean / std over channels) and ``W' = W diag(g)``:
        ``W LN(x) = (W' x - (W' 1) mu) / sigma + W b``: one 1x1-conv GEMM on the raw NCHW map plus per-pixel
        statistics, so neither a channels-last copy nor a normalised copy of the C-channel input is made or
        kept for the backward (only the E-channel result is permuted later).
        """
        w = proj.weight.flatten(1)  # [E, C]
        w_g = w * norm.weight  # W' = W diag(g)
        # per-pixel channel statistics as E[x] and E[x^2] (torch.var_mean over dim 1 of NCHW is ~4x slower on
        # CPU); float32 error vs LN in float64: 2e-7 (zero-mean), 2e-6 / 1.5e-5 / 1.4e-4 for a DC offset of
        # 10 / 100 / 1000 channel std (unit embeddings)
        mean = x.mean(1, keepdim=True)  # [B, 1, H, W]
        var = (x.square().mean(1, keepdim=True) - mean.square()).clamp_min(0)
        y = F.conv2d(x, w_g[:, :, None, None])
        y = (y - w_g.sum(1).view(1, -1, 1, 1) * mean) * torch.rsqrt(var + norm.eps)
        y = y + (w @ norm.bias).view(1, -1, 1, 1)
        return F.normalize(y, dim=1)

    def similarity(self, fine: Tensor, coarse: Tensor) -> Tensor:
        """Cosine similarities ``s_kp`` in window-major layout ``[B, Hc, Wc, 4, 9]`` (window pixel
        ``2 * di + dj``); candidates outside the coarse map have similarity exactly 0."""
        self._check(fine, coarse)
        b, _, h, w = fine.shape
        hc, wc = coarse.shape[-2:]
        e = self.embed_dims
        f = self._embed(fine, self.fine_norm, self.fine_emb)  # [B, E, H, W]
        if (2 * hc, 2 * wc) != (h, w):  # odd size: pad the last row / column (cropped from the output)
            f = F.pad(f, (0, 2 * wc - w, 0, 2 * hc - h))
        # [B, E, Hc, 2, Wc, 2] -> [B, Hc, Wc, 2, 2, E] -> [B, Hc, Wc, 4, E]: one copy of the embedding
        f = f.view(b, e, hc, 2, wc, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, hc, wc, 4, e)
        c = self._embed(coarse, self.coarse_norm, self.coarse_emb).permute(0, 2, 3, 1)
        c = F.pad(c, (0, 0, 1, 1, 1, 1))  # zero candidates outside the map
        sims = [(f * c[:, 1 + dy:1 + dy + hc, 1 + dx:1 + dx + wc, None, :]).sum(-1) for dy, dx in HC_OFFSETS]
        return torch.stack(sims, dim=-1)

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
