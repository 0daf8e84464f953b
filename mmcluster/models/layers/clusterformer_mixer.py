"""ClusterFormer token mixer: recurrent clustering + feature dispatch on local windows, per head.

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023,
Sec. 3.1; released code ClusterFormer/ClusterFormer (commit 0c384d2, ``Clustering``). See
``docs/clusterformer.md``. This module only composes
:class:`~mmcluster.models.layers.clusterformer_clustering.RecurrentCrossAttentionClustering` (the centre
update), :class:`~mmcluster.models.layers.clusterformer_dispatch.FeatureDispatch` and the region layout of
:mod:`mmcluster.models.layers.context_cluster` (uneven windows, adaptive-pool matrices).

For a map ``x [B, C, H, W]``, ``E`` heads of ``d`` channels:

1. ``x' = W_s x`` (``sim_proj``, the released ``conv1``), ``K = W_K x`` (``clustering.k_proj``, released
   ``conv_v``), ``V = W_V x`` (``clustering.v_proj``, released ``conv_f``), each ``E*d`` channels; heads are
   contiguous channel blocks.
2. Windows (default, ``compat=False``): **real spatial windows** of at most ``window_size`` pixels per side:
   a side of length ``S`` is split into ``f = ceil(S / window_size)`` regions of ``floor(S/f)`` or
   ``ceil(S/f)`` pixels (the uneven regions of the Context-Cluster layer; divisible sizes give exact
   ``window_size`` windows). This is how "any input size" is resolved: no padding content is ever pooled
   or clustered, so nothing needs to be cropped back.
3. Per window and head: centres ``c^(0)`` = adaptive average pooling of ``x'`` to ``m_h x m_w`` (bins on the
   window's own size; Eq. 5, optional FFN), ``T`` iterations of the recurrent clustering on ``K``, ``V``,
   then the dispatch of the centres to the window's tokens ``x'`` (``'soft'`` Eq. 6 without its MLP and
   residual, which the block supplies; ``'hard'``; or ``'coc'`` with values ``V`` and value centres = pooled
   ``V``).
4. Heads merged, ``W_o`` (``out_proj``, released ``conv2``) back to ``C`` channels.

``compat=True`` reproduces the released pure-PyTorch layer in float64 (with its weights converted by
``tools/model_converters/clusterformer2mmcluster.py``): windows are ``windows`` **counts** per side made by raw
memory reshapes ``[d, H, W] -> [w_h w_w, d, H/w_h, W/w_w]`` (which mix channels and pixels; the split happens
only when both counts are > 1 and needs ``H``, ``W`` divisible by them), ``K`` / ``V`` and the value centres
are raw-reshaped ``[d, h, w] -> [h w, d]`` (no transpose), the recurrence keeps the centres in the code's
channel-first state with ``share_q`` (the shared 1x1 ``conv_c``), no residual M-step, and the dispatch is the
Context-Cluster one with the point-count denominator (``norm_by='mask'``).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcluster.models.layers.clusterformer_clustering import RecurrentCrossAttentionClustering
from mmcluster.models.layers.clusterformer_dispatch import DISPATCH_MODES, FeatureDispatch
from mmcluster.models.layers.context_cluster import _layout
from mmcluster.models.utils.cluster_record import ClusterRecorder
from mmcluster.models.utils.pair import IntPair, to_pair

__all__ = ['ClusterFormerMixer']



class ClusterFormerMixer(ClusterRecorder, nn.Module):
    """Token mixer of a ClusterFormer block (see the module docstring).

    Args:
        dim: channels ``C`` in and out.
        heads: heads ``E``.
        head_dim: channels ``d`` per head.
        num_centers: centres per window ``(m_h, m_w)`` (released: 10 x 10).
        window_size: window side(s) in pixels (``compat=False``).
        windows: windows per side (``compat=True``, the released ``window_w/h``).
        num_iters: recurrences ``T``.
        residual: M-step with the residual (default: ``not compat``).
        temperature: E-step temperature (``None`` = 1).
        center_ffn: FFN on the pooled centres (Eq. 5).
        share_q: one ``d x d`` query map shared by the heads (default: ``compat``).
        dispatch: ``'soft'`` / ``'hard'`` / ``'coc'`` (default ``'coc'`` if ``compat`` else ``'soft'``).
        norm_by: denominator of the ``'coc'`` dispatch (``'mask'`` released, ``'sim'``).
        update: centre-update strategy (Table 6c / S1c ablation): ``'rca'``, ``'kmeans'``, ``'cross_attn'``,
            ``'cosine'`` (see :mod:`mmcluster.models.layers.clusterformer_clustering`).
        compat: reproduce the released layer (raw reshapes; see the module docstring).

    Deviations from the released layer (``compat=False``, the default): real spatial windows of at most
    ``window_size`` pixels instead of raw-reshape "windows" counted per side; proper token layouts; residual
    M-step, full query map and the Eq. 6 dispatch (``residual``, ``share_q``, ``dispatch`` restore each).
    """

    def __init__(self,
                 dim: int,
                 heads: int = 4,
                 head_dim: int = 32,
                 num_centers: IntPair = 10,
                 window_size: IntPair = 14,
                 windows: IntPair = 1,
                 num_iters: int = 3,
                 residual: Optional[bool] = None,
                 temperature: Optional[float] = None,
                 center_ffn: bool = False,
                 share_q: Optional[bool] = None,
                 dispatch: Optional[str] = None,
                 norm_by: str = 'mask',
                 update: str = 'rca',
                 compat: bool = False) -> None:
        super().__init__()
        dispatch = dispatch or ('coc' if compat else 'soft')
        if dispatch not in DISPATCH_MODES:
            raise ValueError(f'dispatch must be one of {DISPATCH_MODES}, got {dispatch!r}')
        self.dim, self.heads, self.head_dim = dim, heads, head_dim
        self.num_centers = to_pair(num_centers, 'num_centers')
        self.window_size = to_pair(window_size, 'window_size')
        self.windows = to_pair(windows, 'windows')
        self.compat = compat
        if compat and center_ffn:
            raise ValueError('center_ffn (paper Eq. 5) does not exist in the released layer: use compat=False')
        inner = heads * head_dim
        self.sim_proj = nn.Linear(dim, inner)
        self.clustering = RecurrentCrossAttentionClustering(
            inner, in_dims=dim, num_heads=heads, head_dim=head_dim, num_iters=num_iters,
            residual=(not compat) if residual is None else residual, temperature=temperature,
            center_ffn=center_ffn, share_q=compat if share_q is None else share_q, raw_reshape=compat,
            update=update)
        self.dispatch = FeatureDispatch(head_dim, mode=dispatch, mlp=False, residual=False, norm_by=norm_by)
        self.out_proj = nn.Linear(inner, dim)

    def extra_repr(self) -> str:
        win = f'windows={self.windows}' if self.compat else f'window_size={self.window_size}'
        return (f'dim={self.dim}, heads={self.heads}, head_dim={self.head_dim}, '
                f'num_centers={self.num_centers}, {win}, compat={self.compat}')

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f'ClusterFormerMixer expects [B, {self.dim}, H, W], got {tuple(x.shape)}')
        return self._forward_compat(x) if self.compat else self._forward_windows(x)

    def _proj(self, pts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        k, v = self.clustering.project_kv(pts)
        return self.sim_proj(pts), k, v

    # -- paper semantics: real spatial windows ------------------------------------------------------------
    def _forward_windows(self, x: Tensor) -> Tensor:
        # Python ints also under tracing (ONNX): the region layout is built (and cached) from the size in Python;
        # traced sizes would turn its arithmetic into graph nodes frozen to the export size
        B, C, H, W = (int(v) for v in x.shape)
        E, d = self.heads, self.head_dim
        fold = (-(-H // self.window_size[0]), -(-W // self.window_size[1]))
        gather, scatter, valid, pool, grid, L = _layout(H, W, fold, self.num_centers, x.device)
        R = grid[0] * grid[1] if isinstance(grid, tuple) else int(grid)  # (f_h, f_w) or their product
        M = pool.shape[1]
        regions = not (R == 1 and L == H * W)
        pts = x.flatten(2).transpose(1, 2)
        if regions:
            pts = pts[:, gather]
        xs, k, v = (t.view(B, R, L, E, d).permute(0, 1, 3, 2, 4) for t in self._proj(pts))  # [B, R, E, L, d]
        pool = pool.to(x.dtype)[None, :, None]  # [1, R|1, 1, M, L]
        c0 = torch.matmul(pool, xs).reshape(B * R, E, M, d)
        if self.clustering.center_ffn is not None:
            c0 = self.clustering.apply_center_ffn(c0.transpose(1, 2).reshape(B * R, M, E * d))
            c0 = c0.view(B * R, M, E, d).transpose(1, 2)
        vmask = None if valid is None else valid[None].expand(B, R, L).reshape(B * R, L)

        def to_grid(t: Tensor, tail: int) -> Tensor:  # [(B R), E, L, *tail] or [(B R E), L, *tail]
            rest = t.shape[t.dim() - tail:]
            t = t.reshape(B, R, E, L, *rest).transpose(1, 2).reshape(B, E, R * L, *rest)
            return t[:, :, scatter] if regions else t

        meta = dict(windows=R, window_local_ids=True)
        c = self.clustering.cluster(c0, k.reshape(B * R, E, L, d), v.reshape(B * R, E, L, d), valid=vmask,
                                    spatial_shape=(H, W), to_grid=lambda t: to_grid(t, 1), record_meta=meta)
        dgrid = lambda t: to_grid(t, t.dim() - 2)  # noqa: E731  hard [b, L] or soft [b, L, M]
        xs = xs.reshape(B * R * E, L, d)
        c = c.reshape(B * R * E, M, d)
        vm = None if vmask is None else vmask.repeat_interleave(E, dim=0)
        if self.dispatch.mode == 'coc':
            vals = v.reshape(B * R * E, L, d)
            vcen = torch.matmul(pool, v).reshape(B * R * E, M, d)
            y = self.dispatch(xs, c, vals, vcen, valid=vm, spatial_shape=(H, W), to_grid=dgrid, record_meta=meta)
        else:
            y = self.dispatch(xs, c, valid=vm, spatial_shape=(H, W), to_grid=dgrid, record_meta=meta)
        y = y.view(B, R, E, L, d).permute(0, 1, 3, 2, 4).reshape(B, R * L, E * d)
        out = self.out_proj(y)
        if regions:
            out = out[:, scatter]
        return out.transpose(1, 2).reshape(B, C, H, W)

    # -- released code: raw memory reshapes ---------------------------------------------------------------
    def _forward_compat(self, x: Tensor) -> Tensor:
        B, C, H, W = (int(v) for v in x.shape)  # Python ints also under tracing (see _forward_windows)
        E, d = self.heads, self.head_dim
        ww, wh = self.windows
        split = ww > 1 and wh > 1
        if split and (H % ww or W % wh):
            raise ValueError(f'compat=True reproduces the released raw-reshape windows, which need H, W divisible '
                             f'by the window counts {self.windows}; got {H}x{W}. Use compat=False for any size.')
        pts = x.flatten(2).transpose(1, 2)
        maps = [t.transpose(1, 2).reshape(B * E, d, H, W) for t in self._proj(pts)]
        if split:
            maps = [t.reshape(B * E * ww * wh, d, H // ww, W // wh) for t in maps]
        xm, km, vm = maps
        b, _, h, w = xm.shape
        M = self.num_centers[0] * self.num_centers[1]
        keys = km.reshape(b, h * w, d)  # raw: [d, h, w] memory read as [h w, d]
        vals = vm.reshape(b, h * w, d)
        # adaptive average pooling as one GEMM with its [M, h w] weights (the CPU kernel of
        # F.adaptive_avg_pool2d is slow when it upsamples, as the released 10 x 10 centres of 2 x 2 windows do)
        pool = _layout(h, w, (1, 1), self.num_centers, x.device)[3][0].to(x.dtype).t()  # [h w, M]
        c0 = torch.matmul(xm.reshape(b, d, h * w), pool).transpose(1, 2)  # state [d, M] -> centres [M, d]
        vcen = torch.matmul(vm.reshape(b, d, h * w), pool).reshape(b, M, d)  # raw

        def to_grid(t: Tensor, tail: int) -> Tensor:  # raw memory order of the tokens, per head
            return t.reshape(B, E, H * W, *t.shape[t.dim() - tail:])

        meta = dict(raw_layout=True, windows=b // (B * E))
        # squeeze (a view), not [:, 0]: its backward makes no zero-filled gradient
        c = self.clustering.cluster(c0[:, None], keys[:, None], vals[:, None], spatial_shape=(H, W),
                                    to_grid=lambda t: to_grid(t, 1), record_meta=meta).squeeze(1)
        xs = xm.reshape(b, d, h * w).transpose(1, 2)
        y = self.dispatch(xs, c, vals, vcen, spatial_shape=(H, W), to_grid=lambda t: to_grid(t, 0),
                          record_meta=meta)
        y = y.reshape(b, d, h, w)  # raw
        y = y.reshape(B * E, d, H, W).reshape(B, E * d, H, W)
        return self.out_proj(y.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, C, H, W)
