"""Multi-head multi-scale clustering-guided self-attention of ClusTR (paper Eqs. 3, 5-8; ``docs/clustr.md``).

For tokens ``X`` ``[B, N, C]`` (the block passes ``LN(z)``), heads ``h = 1..H`` of width ``d = C / H`` and token
reduction ratios ``lambda_1..lambda_L``:

* clustering: one DPC-kNN run (:mod:`.dpc_knn`) on ``X`` per layer; the density and score are shared by all
  scales, each scale takes the top ``M_j = ceil(N / lambda_j)`` centres and its own assignment ``G^j`` (nearest
  centre, or the paper's chain of nearest denser tokens with ``assign='parent'``). ``lambda = 1`` (or
  ``M_j = N`` on a small map) means no clustering: the scale attends to all tokens;
* merge (Eq. 3, normalised as in TCFormer): ``Cluster(X; lambda_j)_m = sum_{i in G^j_m} w^j_i x_i / sum w^j_i``
  with learnable per-token weights ``w^j_i = exp(s^j_i)``, ``s^j = Linear(X)`` (one output column per clustered
  scale; ``X`` is already layer-normalised, so this is TCFormer's ``exp(Linear(LN(x)))``). The exponent is
  shifted by its (detached) per-cluster maximum, which leaves the normalised merge unchanged and keeps
  ``exp`` finite (:func:`.dpc_knn.cluster_softmax_weights`): the merge is a softmax over each cluster's scores.
  The weights are differentiable, so the score layer learns through the attention output;
* keys / values: per-scale full-width ``kv_j = Linear(C, 2C)`` applied to the **merged** tokens. Since the merge
  is a normalised weighted mean, ``Cluster(X) W + b = Cluster(X W + b)`` (up to the merge's ``eps``), i.e. this
  equals clustering the projected keys and values of Eq. 5 with one assignment shared by K and V, at
  ``M_j / N`` of the projection cost. Full-width per-scale K/V is the layout that reproduces the published
  parameter counts (``docs/clustr.md``);
* ``q = Linear(C, C)(X)``; per head ``ClusAtt = softmax(q_h k_h^T / sqrt(d)) v_h`` (Eq. 5) with
  :func:`torch.nn.functional.scaled_dot_product_attention`;
* ``multiscale='sum'`` (Eq. 8, default): ``Phi(sum_j concat_h ClusAtt(...; lambda_j))``, one softmax per scale;
  ``multiscale='concat'`` (Eq. 7): one softmax per head over the union of all scales' clustered keys
  ``[M_1 + ... + M_L]`` (with the same per-scale K/V projections, so both modes have the same parameters);
* ``Phi`` = ``proj`` Linear(C, C) (Eq. 6).

Deviations from the paper (no official code exists; each listed in ``docs/clustr.md``):

* assignment: TCFormer's nearest centre by default; ``assign='parent'`` gives the paper's text (the cluster of
  the nearest denser token);
* merge: normalised (a softmax over each cluster's scores); Eq. 3 writes an unnormalised ``sum_i w_i x_i`` and
  does not say what ``w_i`` is. No switch: an unnormalised sum of ``exp(s_i) x_i`` grows with the cluster size
  (up to ``lambda = 64`` tokens) and would no longer commute with the K/V projection's bias;
* one clustering of ``X`` shared by all heads (Eq. 6 writes ``Cluster(X W_i^K)`` per head ``i``):
  ``cluster_per_head=True`` clusters each head's keys ``X W_i^K`` instead (one DPC-kNN run per scale on
  ``B * H`` samples of ``d`` channels) and merges that head's keys and values with it (one assignment for K and
  V: clustering the values separately would pair unrelated keys and values). K/V are then projected for all
  ``N`` tokens before the merge (Eq. 5's order), the parameters are the same;
* the weight predictor ``s = Linear(X)``, ``k = 5`` and the distance scale ``1 / sqrt(C)`` are TCFormer's
  choices (the paper does not give them); ``dist_scale=False`` is the paper's Eq. 1.

Cluster records (:class:`~mmcluster.models.utils.cluster_record.ClusterRecorder`): inside
``recording_clusters(model)`` every forward records, per clustered scale ``j`` (in the order of ``ratios``), a
``'hard'`` record with ``assignment`` ``[B, N]`` (``[B, H, N]`` with ``cluster_per_head``) of cluster ids in
``[0, M_j)`` on the token grid ``spatial_shape = hw`` (``(N,)`` if no ``hw`` is passed), ``num_clusters = M_j``,
``step = j`` and ``meta = {'ratio': lambda_j}``. Cluster id ``m`` is the centre of rank ``m`` (descending score).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcluster.models.utils.cluster_record import ClusterRecorder
from .dpc_knn import check_assign, cluster_softmax_weights, dpc_knn_multi, merge_tokens

MULTISCALE_MODES = ('sum', 'concat')


class ClusteringAttention(ClusterRecorder, nn.Module):
    """MHMS-ClusAtt (paper Eq. 8 / Eq. 7).

    Deviations from the paper (details in the module docstring and ``docs/clustr.md``): tokens join the nearest
    centre (``assign='parent'``: the nearest denser token, the paper's text); the merge is normalised, a softmax
    over each cluster's scores (no switch); one clustering of the input serves all heads
    (``cluster_per_head=True``: each head's keys are clustered, Eq. 6); distances are scaled by ``1/sqrt(C)``
    (``dist_scale=False``: Eq. 1).

    Args:
        embed_dims: channels ``C``.
        num_heads: heads ``H`` (``C % H == 0``).
        ratios: token reduction ratios ``lambda_j >= 1`` (e.g. ``(64, 16)``); 1 = attention over all tokens.
        multiscale: ``'sum'`` (Eq. 8) or ``'concat'`` (Eq. 7).
        k: neighbours of the DPC-kNN density.
        dist_scale: DPC-kNN distances divided by ``sqrt(C)`` (TCFormer) or not (paper Eq. 1).
        chunk_size: DPC-kNN rows per distance block (None: automatic).
        assign: ``'center'`` (nearest centre, TCFormer) or ``'parent'`` (nearest denser token, paper text).
        cluster_per_head: cluster each head's keys (Eq. 6 read literally) instead of ``X`` once for all heads.
        qkv_bias: bias of ``q`` and ``kv``.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after ``proj``.

    Parameters: ``q`` (C -> C), ``kv.j`` (C -> 2C, first C channels = keys, last C = values; heads are
    contiguous blocks of ``d`` channels), ``score`` (C -> number of ratios > 1; absent if none), ``proj``.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 ratios: Sequence[float] = (1, ),
                 multiscale: str = 'sum',
                 k: int = 5,
                 dist_scale: bool = True,
                 chunk_size: Optional[int] = None,
                 assign: str = 'center',
                 cluster_per_head: bool = False,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        if isinstance(ratios, (int, float)):
            ratios = (ratios, )
        ratios = tuple(ratios)
        if len(ratios) == 0 or any(not isinstance(r, (int, float)) or isinstance(r, bool) or r < 1 for r in ratios):
            raise ValueError(f'ratios must be a non-empty sequence of numbers >= 1, got {ratios!r}')
        if multiscale not in MULTISCALE_MODES:
            raise ValueError(f'multiscale must be one of {MULTISCALE_MODES}, got {multiscale!r}')
        check_assign(assign)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.ratios = ratios
        self.multiscale = multiscale
        self.k = k
        self.dist_scale = dist_scale
        self.chunk_size = chunk_size
        self.assign = assign
        self.cluster_per_head = bool(cluster_per_head)
        self.attn_drop = attn_drop
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.ModuleList(nn.Linear(embed_dims, 2 * embed_dims, bias=qkv_bias) for _ in ratios)
        # score column of each clustered scale
        self._score_col = {}
        for j, r in enumerate(ratios):
            if r > 1:
                self._score_col[j] = len(self._score_col)
        self.score = nn.Linear(embed_dims, len(self._score_col)) if self._score_col else None
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def num_clusters(self, num_tokens: int) -> List[int]:
        """Keys of each scale for ``num_tokens`` queries: ``min(N, ceil(N / lambda))``."""
        return [min(num_tokens, math.ceil(num_tokens / r)) for r in self.ratios]

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, ratios={self.ratios}, '
                f'multiscale={self.multiscale!r}, k={self.k}, assign={self.assign!r}, '
                f'cluster_per_head={self.cluster_per_head}')

    def _cluster(self, feats: torch.Tensor, ms: Sequence[int]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        return dpc_knn_multi(feats, ms, k=self.k, dist_scale=self.dist_scale, chunk_size=self.chunk_size,
                             assign=self.assign)

    def _keys_values(self, x: torch.Tensor, ms: List[int], clustered: List[int],
                     spatial_shape: Tuple[int, ...]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Per scale the (merged) keys and values ``[B, H, M_j, d]``; records the clusterings."""
        B, N, C = x.shape
        H, d = self.num_heads, self.head_dims
        scores = self.score(x) if clustered else None
        shared = {}
        if clustered and not self.cluster_per_head:
            shared = dict(zip(clustered, self._cluster(x, [ms[j] for j in clustered])))
        keys, values = [], []
        for j, m in enumerate(ms):
            if j not in clustered:
                kv = self.kv[j](x).view(B, N, 2, H, d).permute(2, 0, 3, 1, 4)
            elif not self.cluster_per_head:
                idx = shared[j][0]
                self.record_clusters(idx, spatial_shape, m, step=j, meta={'ratio': self.ratios[j]})
                w = cluster_softmax_weights(scores[..., self._score_col[j]], idx, m)
                xm = merge_tokens(x, idx, m, w).to(x.dtype)
                kv = self.kv[j](xm).view(B, m, 2, H, d).permute(2, 0, 3, 1, 4)
            else:  # Eq. 6 literally: cluster each head's keys, merge that head's keys and values with it
                kv = self.kv[j](x).view(B, N, 2, H, d).permute(2, 0, 3, 1, 4).reshape(2, B * H, N, d)
                idx = self._cluster(kv[0], [m])[0][0]  # [B * H, N]
                self.record_clusters(idx.view(B, H, N), spatial_shape, m, step=j, meta={'ratio': self.ratios[j]})
                s = scores[..., self._score_col[j]].repeat_interleave(H, dim=0)
                w = cluster_softmax_weights(s, idx, m)
                kv = torch.stack([merge_tokens(kv[0], idx, m, w), merge_tokens(kv[1], idx, m, w)])
                kv = kv.to(x.dtype).view(2, B, H, m, d)
            keys.append(kv[0])
            values.append(kv[1])
        return keys, values

    def forward(self, x: torch.Tensor, hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """``x`` ``[B, N, C]`` -> ``[B, N, C]``; ``hw`` the token grid (``h * w == N``), used for the records."""
        B, N, C = x.shape
        H, d = self.num_heads, self.head_dims
        spatial_shape = tuple(hw) if hw is not None else (N, )
        ms = self.num_clusters(N)
        clustered = [j for j, m in enumerate(ms) if m < N]
        keys, values = self._keys_values(x, ms, clustered, spatial_shape)
        q = self.q(x).view(B, N, H, d).transpose(1, 2)
        p = self.attn_drop if self.training else 0.
        if self.multiscale == 'sum' or len(keys) == 1:
            out = None
            for kj, vj in zip(keys, values):
                o = F.scaled_dot_product_attention(q, kj.to(q.dtype), vj.to(q.dtype), dropout_p=p)
                out = o if out is None else out + o
        else:
            kc = torch.cat(keys, dim=2).to(q.dtype)
            vc = torch.cat(values, dim=2).to(q.dtype)
            out = F.scaled_dot_product_attention(q, kc, vc, dropout_p=p)
        out = out.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(out))
