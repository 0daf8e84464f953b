"""Recurrent cross-attention clustering of ClusterFormer (the centre update).

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023,
Sec. 3.1 Eqs. 3-5 and supplementary Algorithm 1. See ``docs/clusterformer.md``.

For features ``F`` (tokens ``[B, N, C_in]``, optionally on a grid ``H x W``) and ``M`` centres ``c^(0)``:

* keys and values are projected **once**: ``K = F W_K``, ``V = F W_V`` (``k_proj``, ``v_proj``);
* for ``t = 1..T`` (``num_iters``, default 3) with the **same** ``W_Q`` (``q_proj``) every iteration, per head
  ``e`` (``Q``, ``K`` split into ``E`` heads of ``head_dim``; ``V`` and the centres into ``E`` heads of
  ``embed_dims / E``)::

      Q^(t)    = c^(t-1) W_Q
      Gamma^(t) = softmax over the M clusters of ( Q^(t) K^T / tau )        # E-step, [B, E, M, N]
      c^(t)    = c^(t-1) + Gamma^(t) V        (residual=True, supplementary Algorithm 1)
      c^(t)    =           Gamma^(t) V        (residual=False, main paper Eq. 3 and the released code)

  The softmax runs along the clusters (dim -2): every token distributes a unit of responsibility over the
  ``M`` centres; the M-step is the unnormalised responsibility-weighted sum of the values (Algorithm 1).
  There is no ``1/sqrt(d)``: ``tau`` (``temperature``) is ``1`` unless given. Tokens flagged invalid
  (``valid=False``, e.g. padding) get zero responsibility and never enter a centre.
* initial centres (Eq. 5): when no centres are passed, ``c^(0) = AdaptiveAvgPool_{m_h x m_w}(F)`` on the
  ``H x W`` grid (``C_in == embed_dims`` needed) and, with ``center_ffn=True``, ``c^(0) <- FFN(c^(0))`` with the
  paper's two FC layers and a GELU (Eq. 5; the released code has no FFN).

Centre-update ablations (paper Table 6c, supplementary Table S1c; ``update``), all with the same parameters
and the same M-step:

* ``'rca'`` (default): the E-step above (softmax over the clusters, Eq. 2-3);
* ``'kmeans'``: k-means assignment ``Gamma = onehot(argmax over the clusters of Q K^T)`` (kMaX-DeepLab Eq. 4,
  no gradient through the assignment). kMaX's own ``KMeansCrossAttentionLayer`` is a whole decoder layer
  (mask predictor, batch norms, class head), not a centre-update rule, so only its E-step is used here;
* ``'cross_attn'``: vanilla cross-attention, softmax over the **tokens** (Eq. 1);
* ``'cosine'``: softmax over the clusters of the cosine similarity of ``Q`` and ``K`` (times ``1/tau``).

Heads: with ``share_q=True`` ``W_Q`` is one ``head_dim x head_dim`` map shared by all heads (the released
code's ``conv_c``, a 1x1 conv applied to the heads folded into the batch); otherwise ``W_Q`` is a full
``embed_dims x E*head_dim`` map (Algorithm 1's ``nn.Linear``).

Compatibility with the released pure-PyTorch code (ClusterFormer/ClusterFormer commit 0c384d2):
``raw_reshape=True`` keeps each head's centres in the code's channel-first state ``[d, M]`` and reproduces its
memory reshapes: ``Q`` is ``(W_Q state + b)`` read as ``[M, d]`` by a raw reshape, and the M-step result
``[M, d]`` becomes the next state by a raw reshape to ``[d, M]``. Together with ``residual=False`` and
``share_q=True`` this equals the released loop exactly (the returned tokens are the state transposed, as the
code reads them for its similarity).

Cluster records (``mmcluster.models.utils.cluster_record``): every iteration records ``Gamma^(t)`` as kind
``'soft'`` ``[B, (E,) N, M]`` with ``step=t`` (0-based), on the token grid given by ``spatial_shape`` (callers
that fold windows into the batch pass ``to_grid`` to map the responsibilities back).
"""
import logging
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from mmcluster.models.utils.cluster_record import ClusterRecorder
from mmcluster.models.utils.pair import IntPair, to_pair

__all__ = ['RecurrentCrossAttentionClustering', 'CENTRE_UPDATES']

#: centre-update strategies of the paper's ablation (Table 6c / supplementary Table S1c)
CENTRE_UPDATES = ('rca', 'kmeans', 'cross_attn', 'cosine')



class RecurrentCrossAttentionClustering(ClusterRecorder, nn.Module):
    """Recurrent cross-attention clustering (paper Eqs. 3-5, supplementary Algorithm 1).

    Args:
        embed_dims: channels of the centres and of the values (``V = F W_V``).
        in_dims: channels of the input features (keys / values are projected from them); default
            ``embed_dims``.
        num_heads: heads ``E``; the centres / values split into ``E`` heads of ``embed_dims / E``.
        head_dim: channels per head of ``Q`` and ``K``; default ``embed_dims / E``.
        num_iters: EM iterations ``T`` (paper default 3). ``T = 0`` returns the initial centres.
        residual: M-step ``c + Gamma V`` (Algorithm 1, default) or ``Gamma V`` (Eq. 3, released code).
        temperature: ``tau`` of the E-step softmax (logits divided by it); ``None`` = 1 (paper).
        num_centers: ``(m_h, m_w)`` of the adaptive pooling that initialises the centres when none are passed.
        center_ffn: apply the FFN of Eq. 5 to the pooled centres.
        ffn_ratio: hidden width of that FFN relative to ``embed_dims``.
        share_q: one ``head_dim x head_dim`` query map shared by the heads (released ``conv_c``); needs
            ``embed_dims / E == head_dim``.
        raw_reshape: reproduce the released code's memory reshapes of the centres (see the module docstring).
        mass_norm: divide each centre's M-step sum by its responsibility mass ``sum_n Gamma_mn`` (+1e-6), i.e. a
            soft k-means mean instead of the unnormalised sum of Algorithm 1 (not in the paper; off by default).
        update: centre-update strategy, one of :data:`CENTRE_UPDATES` (see the module docstring).
        bias: biases of the projections.

    Deviations (all switchable; ``docs/clusterformer.md``): the M-step residual follows Algorithm 1 (Eq. 3 has
    none, nor has the released code: ``residual=False``); ``W_Q`` is a full map (released: a head-shared ``d x d``
    1x1 conv, ``share_q=True``); centres are proper tokens (released: raw memory reshapes, ``raw_reshape=True``);
    ``temperature`` and ``mass_norm`` are additions (off by default); ``update`` selects the Table 6c variants.
    """

    def __init__(self,
                 embed_dims: int,
                 in_dims: Optional[int] = None,
                 num_heads: int = 1,
                 head_dim: Optional[int] = None,
                 num_iters: int = 3,
                 residual: bool = True,
                 temperature: Optional[float] = None,
                 num_centers: Optional[IntPair] = None,
                 center_ffn: bool = False,
                 ffn_ratio: float = 4.,
                 share_q: bool = False,
                 raw_reshape: bool = False,
                 mass_norm: bool = False,
                 update: str = 'rca',
                 bias: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        if update not in CENTRE_UPDATES:
            raise ValueError(f'update must be one of {CENTRE_UPDATES}, got {update!r}')
        if num_iters < 0:
            raise ValueError(f'num_iters must be >= 0, got {num_iters}')
        if temperature is not None and temperature <= 0:
            raise ValueError(f'temperature must be > 0 or None, got {temperature}')
        self.embed_dims = embed_dims
        self.in_dims = in_dims or embed_dims
        self.num_heads = num_heads
        self.value_dim = embed_dims // num_heads
        self.head_dim = head_dim or self.value_dim
        self.num_iters = num_iters
        self.residual = residual
        self.temperature = temperature
        self.num_centers = None if num_centers is None else to_pair(num_centers, 'num_centers')
        self._warned_repeated = False  # warn_repeated_centres: once per module
        self.share_q = share_q
        self.raw_reshape = raw_reshape
        self.mass_norm = mass_norm
        self.update = update
        qk = num_heads * self.head_dim
        if share_q:
            if self.value_dim != self.head_dim:
                raise ValueError('share_q needs embed_dims / num_heads == head_dim, got '
                                 f'{self.value_dim} != {self.head_dim}')
            self.q_proj = nn.Linear(self.head_dim, self.head_dim, bias=bias)
        else:
            self.q_proj = nn.Linear(embed_dims, qk, bias=bias)
        self.k_proj = nn.Linear(self.in_dims, qk, bias=bias)
        self.v_proj = nn.Linear(self.in_dims, embed_dims, bias=bias)
        if center_ffn:
            hidden = int(embed_dims * ffn_ratio)
            self.center_ffn = nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU(), nn.Linear(hidden, embed_dims))
        else:
            self.center_ffn = None

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, head_dim={self.head_dim}, '
                f'num_iters={self.num_iters}, residual={self.residual}, temperature={self.temperature}, '
                f'share_q={self.share_q}, raw_reshape={self.raw_reshape}')

    # ------------------------------------------------------------------------------------------------
    def project_kv(self, feats: Tensor) -> Tuple[Tensor, Tensor]:
        """``feats [..., N, C_in]`` -> ``K [..., N, E*head_dim]``, ``V [..., N, embed_dims]`` (computed once)."""
        return self.k_proj(feats), self.v_proj(feats)

    def init_centres(self, feats: Tensor, hw_shape: Sequence[int]) -> Tensor:
        """Eq. 5: adaptive average pooling of ``feats [B, N, C]`` on ``hw_shape`` (+ the optional FFN)."""
        if self.num_centers is None:
            raise ValueError('no centres given and num_centers is None: pass centres or set num_centers')
        if feats.shape[-1] != self.embed_dims:
            raise ValueError(f'pooled centres need in_dims == embed_dims, got {feats.shape[-1]} != '
                             f'{self.embed_dims}; pass centres instead')
        B, N, C = feats.shape
        H, W = hw_shape
        if H * W != N:
            raise ValueError(f'hw_shape {tuple(hw_shape)} does not match {N} tokens')
        self.warn_repeated_centres(H, W)
        grid = feats.transpose(1, 2).reshape(B, C, H, W)
        centres = F.adaptive_avg_pool2d(grid, self.num_centers).flatten(2).transpose(1, 2)
        return self.apply_center_ffn(centres)

    def warn_repeated_centres(self, height: int, width: int) -> None:
        """Warn once when pooling an ``height x width`` map to more centres than it has tokens: the initial
        centres then repeat (all equal for a 1 x 1 map) and, with equal responsibilities, stay alike, which slows
        or prevents learning (``docs/benchmark_protocol.md``: the toy ClusterFormer Deformable-DETR at 64², whose
        stride-64 level has 1-2 tokens for 50 queries, did not learn)."""
        num = self.num_centers[0] * self.num_centers[1]
        if height * width >= num or self._warned_repeated or torch.jit.is_tracing() \
                or torch.compiler.is_compiling():
            return
        self._warned_repeated = True
        print_log(f'{type(self).__name__}: {num} centres pooled from a {height}x{width} map repeat (at most '
                  f'{height * width} distinct initial centres); use larger inputs, a finer level or learned '
                  "queries (query_init='free')", logger='current', level=logging.WARNING)

    def apply_center_ffn(self, centres: Tensor) -> Tensor:
        return centres if self.center_ffn is None else self.center_ffn(centres)

    def _queries(self, c: Tensor, pos: Optional[Tensor] = None) -> Tensor:
        """Centres ``[b, E, M, dv]`` (+ positions) -> queries ``[b, E, M, dq]`` with the shared ``W_Q``."""
        if pos is not None:
            c = c + pos
        b, E, M, dv = c.shape
        if self.share_q and self.raw_reshape:
            # the code's channel-first state [d, M] (c is its transpose) -> W_Q state + b, read raw as [M, d]:
            # computed in that layout directly, so neither the state nor the queries are transposed in memory
            state = c.transpose(-1, -2).reshape(b * E, dv, M)
            weight = self.q_proj.weight.expand(b * E, -1, -1)  # one batched GEMM, the weight not copied
            if self.q_proj.bias is None:
                q = torch.bmm(weight, state)
            else:
                q = torch.baddbmm(self.q_proj.bias[:, None].expand(b * E, -1, M), weight, state)
            return q.view(b, E, M, -1)  # [dq, M] memory read as [M, dq]
        if self.share_q:
            q = self.q_proj(c)
        else:
            q = self.q_proj(c.transpose(1, 2).reshape(b, M, E * dv)).view(b, M, E, -1).transpose(1, 2)
        if self.raw_reshape:  # the code's channel-first state [d, M] read as [M, d]
            q = q.transpose(-1, -2).reshape(b, E, M, q.shape[-1])
        return q

    def cluster(self,
                centres: Tensor,
                keys: Tensor,
                values: Tensor,
                valid: Optional[Tensor] = None,
                spatial_shape: Optional[Sequence[int]] = None,
                to_grid: Optional[Callable[[Tensor], Tensor]] = None,
                record_meta: Optional[dict] = None,
                query_pos: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """The T EM iterations on already projected, head-split tensors.

        Args:
            centres: ``c^(0)`` ``[b, E, M, embed_dims/E]``.
            keys: ``K`` ``[b, E, N, head_dim]``.
            values: ``V`` ``[b, E, N, embed_dims/E]``.
            valid: optional bool ``[b, N]`` (or broadcastable to ``[b, E, M, N]``); invalid tokens get no
                responsibility.
            spatial_shape: token grid for the cluster records (records are made only when given).
            to_grid: maps ``Gamma^T`` ``[b, E, N, M]`` to the record layout ``[B, (E,) prod(spatial_shape), M]``.
            record_meta: ``meta`` of the records.
            query_pos: positional embedding added to the centres before ``W_Q`` every iteration
                ``[b, E, M, embed_dims/E]`` (decoder use).
            attn_mask: bool ``[b, E, M, N]`` (or broadcastable), True = the pair (centre, token) is excluded
                from the E-step (its logit is -inf before the softmax over the clusters); a token excluded for
                every centre is not excluded at all (the per-token form of Mask2Former's reset rule).

        Returns:
            ``c^(T)`` ``[b, E, M, embed_dims/E]``.
        """
        c = centres
        # The softmax over the clusters runs on token-major logits [b, E, N, M] (over their last dimension),
        # the softmax over the tokens ('cross_attn') on [b, E, M, N]: the same values, but inductor (torch
        # 2.14, CPU) miscompiled a softmax over dim -2 of q k^T when the projections were in the same graph
        # (docs/deployment.md, torch.compile).
        token_major = self.update != 'cross_attn'
        if attn_mask is not None:  # fully masked (token for 'rca', centre for 'cross_attn'): unmasked
            attn_mask = attn_mask & ~attn_mask.all(dim=-2 if token_major else -1, keepdim=True)
            if token_major:
                attn_mask = attn_mask.transpose(-1, -2)
        if valid is not None:
            if valid.dim() == 2:
                valid = valid[:, None, None, :]
            if token_major:
                valid = valid.transpose(-1, -2) if valid.dim() >= 2 else valid[:, None]
        scale = None if self.temperature is None else 1.0 / self.temperature
        for t in range(self.num_iters):
            q = self._queries(c, query_pos)
            k = keys
            if self.update == 'cosine':
                q, k = F.normalize(q, dim=-1), F.normalize(keys, dim=-1)
            # [b, E, N, M] (token-major) or [b, E, M, N]
            logits = torch.matmul(k, q.transpose(-1, -2)) if token_major else torch.matmul(q, k.transpose(-1, -2))
            if scale is not None:
                logits = logits * scale
            if attn_mask is not None:
                logits = logits.masked_fill(attn_mask, float('-inf'))
            if not token_major and valid is not None:
                logits = logits.masked_fill(~valid, float('-inf'))
            if self.update == 'kmeans':  # ties: the first cluster, as argmax over dim -2 of [b, E, M, N]
                gamma = F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
            else:
                gamma = logits.softmax(dim=-1)  # E-step: over the M clusters (Eq. 2-3) or the tokens (Eq. 1)
            if valid is not None:
                gamma = gamma * valid.to(gamma.dtype)
            # M-step: [b, E, M, dv]
            update = torch.matmul(gamma.transpose(-1, -2) if token_major else gamma, values)
            if self.mass_norm:
                mass = gamma.sum(dim=-2).unsqueeze(-1) if token_major else gamma.sum(dim=-1, keepdim=True)
                update = update / (mass + 1e-6)
            if self.raw_reshape:  # [M, d] result -> channel-first state [d, M] by a raw reshape
                b, E, M, dv = update.shape
                update = update.reshape(b, E, dv, M).transpose(-1, -2)
            c = c + update if self.residual else update
            if spatial_shape is not None and self.is_recording_clusters:
                resp = gamma if token_major else gamma.transpose(-1, -2)  # [b, E, N, M]
                if to_grid is not None:
                    resp = to_grid(resp)
                self.record_clusters(resp, spatial_shape, resp.shape[-1], kind='soft', step=t,
                                     meta=dict(record_meta or {}))
        return c

    def forward(self,
                feats: Tensor,
                hw_shape: Optional[Sequence[int]] = None,
                centres: Optional[Tensor] = None,
                valid: Optional[Tensor] = None) -> Tensor:
        """``feats [B, N, C_in]`` (+ optional ``centres [B, M, embed_dims]``) -> centres ``[B, M, embed_dims]``.

        Without ``centres`` they are pooled from ``feats`` on ``hw_shape`` (Eq. 5). Records, when recording,
        ``Gamma^(t)`` as ``[B, E, N, M]`` (``[B, N, M]`` for one head) on ``hw_shape`` (or ``(N,)``).
        """
        if feats.dim() != 3 or feats.shape[-1] != self.in_dims:
            raise ValueError(f'feats must be [B, N, {self.in_dims}], got {tuple(feats.shape)}')
        B, N, _ = feats.shape
        if centres is None:
            if hw_shape is None:
                raise ValueError('hw_shape is needed to pool the initial centres')
            centres = self.init_centres(feats, hw_shape)
        elif centres.dim() != 3 or centres.shape[0] != B or centres.shape[-1] != self.embed_dims:
            raise ValueError(f'centres must be [{B}, M, {self.embed_dims}], got {tuple(centres.shape)}')
        M = centres.shape[1]
        E = self.num_heads
        k, v = self.project_kv(feats)
        k = k.view(B, N, E, self.head_dim).transpose(1, 2)
        v = v.view(B, N, E, self.value_dim).transpose(1, 2)
        c = centres.view(B, M, E, self.value_dim).transpose(1, 2)
        grid = tuple(hw_shape) if hw_shape is not None else (N, )
        to_grid = (lambda g: g[:, 0]) if E == 1 else None
        c = self.cluster(c, k, v, valid=valid, spatial_shape=grid, to_grid=to_grid)
        return c.transpose(1, 2).reshape(B, M, self.embed_dims)
