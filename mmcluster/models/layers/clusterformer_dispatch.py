"""Feature dispatching of ClusterFormer (centres -> tokens), in the three readings of the sources.

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023,
Sec. 3.1 Eq. 6 and supplementary Algorithm 2; released code ClusterFormer/ClusterFormer (commit 0c384d2).
See ``docs/clusterformer.md``.

Tokens ``p_n`` (``x [b, N, d]``), centres ``C_k`` (``[b, K, d]``, same space), ``cos`` = cosine similarity:

* ``mode='soft'`` (main paper Eq. 6)::

      p_n' = p_n + MLP( (1/K) sum_k cos(C_k, p_n) C_k )

  a similarity-weighted **mean** of the centres (``1/K``, not normalised by the similarities, as written),
  the MLP applied once outside the sum. ``mlp=False`` / ``residual=False`` drop the MLP / the residual (the
  backbone does, because its block supplies both; see :mod:`mmcluster.models.backbones.clusterformer`).
* ``mode='hard'`` (supplementary Algorithm 2): ``k*(n) = argmax_k cos(C_k, p_n)`` (ties: lowest index),
  ``S^_kn = cos(C_k, p_n) 1[k = k*(n)]`` and::

      p_n' = p_n + (1/K) sum_k MLP( S^_kn p_n )

  The pseudo-code multiplies the **features** (not the centres) by the masked similarity and sums the MLP
  outputs over the ``K`` clusters; its broadcast shapes do not type-check as printed, this is the reading
  in which they do. With a biased MLP the ``K - 1`` zeroed terms add ``MLP(0)``: ``zero_terms=True`` (default,
  literal) keeps them, ``False`` drops them (``p_n + MLP(S^_{k*n} p_n) / K``). Without an MLP the update is
  ``(1/K) S^_{k*n} p_n``.
* ``mode='coc'`` (released code = Context Clusters' operator, Ma et al., ICLR 2023, Eqs. 1-2):
  ``s_kn = sigmoid(beta + alpha cos(C_k, p_n))`` (learnable scalars ``sim_alpha`` = 1, ``sim_beta`` = 0 at
  init), hard mask ``a_kn``, ``S^ = s a``, aggregation of the values ``v_n`` with the value centres ``v^c_k``::

      g_k = (v^c_k + sum_n S^_kn v_n) / (1 + sum_n a_kn)     (norm_by='mask', the released code)
      g_k = (v^c_k + sum_n S^_kn v_n) / (1 + sum_n S^_kn)    (norm_by='sim', Context Clusters' paper)
      y_n = sum_k S^_kn g_k

  no MLP and no residual (the block's). ``values`` / ``value_centres`` default to ``x`` / ``centres``.

``valid [b, N]`` (bool) removes tokens from every sum (uneven or padded windows); their outputs are zero.

Cluster records: the assignment on the token grid, kind ``'hard'`` ``[B, (E,) N]`` for ``'hard'`` / ``'coc'`` and
kind ``'soft'`` ``[B, (E,) N, K]`` (the cosine weights) for ``'soft'``; made only when ``spatial_shape`` is
given (callers that fold windows into the batch pass ``to_grid``).
"""
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcluster.models.utils.cluster_record import ClusterRecorder

__all__ = ['FeatureDispatch', 'DISPATCH_MODES']

DISPATCH_MODES = ('soft', 'hard', 'coc')
NORM_BY = ('mask', 'sim')


def cosine_similarity(centres: Tensor, x: Tensor) -> Tensor:
    """``[b, K, d]``, ``[b, N, d]`` -> ``[b, K, N]`` (eps-normalised, as ``F.normalize``).

    The product of the raw vectors divided by both norms: only the ``[b, K, N]`` result is divided, no
    normalised copy of the centres or tokens is made (the released layers have 100 centres of 4 tokens).
    """
    eps = 1e-12  # F.normalize's
    norm_c = torch.linalg.vector_norm(centres, dim=-1, keepdim=True).clamp_min(eps)  # [b, K, 1]
    norm_x = torch.linalg.vector_norm(x, dim=-1).clamp_min(eps)[:, None, :]  # [b, 1, N]
    return torch.matmul(centres, x.transpose(-1, -2)) / (norm_c * norm_x)


class FeatureDispatch(ClusterRecorder, nn.Module):
    """Feature dispatching (paper Eq. 6 / supplementary Algorithm 2 / released Context-Cluster dispatch).

    Args:
        dim: channels ``d`` of tokens and centres.
        mode: ``'soft'`` (Eq. 6, default), ``'hard'`` (Algorithm 2) or ``'coc'`` (released code).
        mlp: use the MLP (``'soft'`` / ``'hard'``): Linear(d, r d) - GELU - Linear(r d, d).
        mlp_ratio: ``r``.
        residual: add the tokens back (``'soft'`` / ``'hard'``).
        zero_terms: ``'hard'`` only: keep the ``K - 1`` terms ``MLP(0)`` of Algorithm 2.
        norm_by: ``'coc'`` only: ``'mask'`` (released) or ``'sim'`` denominator.

    Under-specified details and how they are resolved: Eq. 6's ``sim`` is the cosine (paper Sec. 3.1) and its
    weights are not normalised (the ``1/K`` mean as written); Algorithm 2 is read as ``sum_k MLP(S^_kn p_n) / K``
    with the ``K - 1`` terms ``MLP(0)`` kept (``zero_terms``); argmax ties go to the lowest centre index; the
    MLP is ``Linear - GELU - Linear`` of width ``mlp_ratio * d`` (the paper gives no width).
    """

    def __init__(self,
                 dim: int,
                 mode: str = 'soft',
                 mlp: bool = True,
                 mlp_ratio: float = 1.,
                 residual: bool = True,
                 zero_terms: bool = True,
                 norm_by: str = 'mask') -> None:
        super().__init__()
        if mode not in DISPATCH_MODES:
            raise ValueError(f'mode must be one of {DISPATCH_MODES}, got {mode!r}')
        if norm_by not in NORM_BY:
            raise ValueError(f'norm_by must be one of {NORM_BY}, got {norm_by!r}')
        self.dim = dim
        self.mode = mode
        self.residual = residual and mode != 'coc'
        self.zero_terms = zero_terms
        self.norm_by = norm_by
        if mode == 'coc':
            self.sim_alpha = nn.Parameter(torch.ones(1))
            self.sim_beta = nn.Parameter(torch.zeros(1))
            self.mlp = None
        elif mlp:
            hidden = max(1, int(dim * mlp_ratio))
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        else:
            self.mlp = None

    def extra_repr(self) -> str:
        return f'dim={self.dim}, mode={self.mode!r}, residual={self.residual}, norm_by={self.norm_by!r}'

    def _mlp(self, t: Tensor) -> Tensor:
        return t if self.mlp is None else self.mlp(t)

    def forward(self,
                x: Tensor,
                centres: Tensor,
                values: Optional[Tensor] = None,
                value_centres: Optional[Tensor] = None,
                valid: Optional[Tensor] = None,
                spatial_shape: Optional[Sequence[int]] = None,
                to_grid: Optional[Callable[[Tensor], Tensor]] = None,
                record_meta: Optional[dict] = None) -> Tensor:
        """``x [b, N, d]``, ``centres [b, K, d]`` -> ``[b, N, d]`` (``[b, N, d_v]`` for ``'coc'`` values)."""
        if x.dim() != 3 or centres.dim() != 3 or x.shape[-1] != centres.shape[-1] or x.shape[0] != centres.shape[0]:
            raise ValueError(f'x [b, N, d] and centres [b, K, d] expected, got {tuple(x.shape)} and '
                             f'{tuple(centres.shape)}')
        K = centres.shape[1]
        cos = cosine_similarity(centres, x)  # [b, K, N]
        vmask = None if valid is None else valid[:, None, :].to(x.dtype)
        if self.mode == 'soft':
            w = cos if vmask is None else cos * vmask
            out = self._mlp(torch.matmul(w.transpose(1, 2), centres) / K)
            out = x + out if self.residual else out
            assign, kind = w.transpose(1, 2), 'soft'
        else:
            sim = cos if self.mode == 'hard' else torch.sigmoid(self.sim_beta + self.sim_alpha * cos)
            idx = sim.argmax(dim=1)  # [b, N]
            mask = F.one_hot(idx, K).transpose(1, 2).to(x.dtype)  # a: [b, K, N]
            if vmask is not None:
                mask = mask * vmask
            s_hat = sim * mask
            assign, kind = idx, 'hard'
            if self.mode == 'hard':
                s_star = s_hat.sum(dim=1)[..., None]  # [b, N, 1]: the only non-zero term
                out = self._mlp(s_star * x)
                if self.mlp is not None and self.zero_terms:
                    out = out + (K - 1) * self.mlp(torch.zeros_like(x[..., :1, :]))
                out = out / K
                if vmask is not None:
                    out = out * valid[..., None].to(x.dtype)
                out = x + out if self.residual else out
            else:
                vals = x if values is None else values
                vcen = centres if value_centres is None else value_centres
                denom = mask if self.norm_by == 'mask' else s_hat
                weights = s_hat / (denom.sum(dim=-1, keepdim=True) + 1.0)  # S^_kn / (1 + sum_n a_kn)
                if x.shape[1] < K:  # y = (W^T S^) V + W^T v^c: no [b, K, dv] intermediate when N < K
                    out = torch.matmul(torch.matmul(weights.transpose(1, 2), s_hat), vals)
                    out = out + torch.matmul(weights.transpose(1, 2), vcen)  # [b, N, dv]
                else:  # y = W^T (S^ V + v^c)
                    out = torch.matmul(weights.transpose(1, 2), torch.matmul(s_hat, vals) + vcen)
        if spatial_shape is not None and self.is_recording_clusters:
            rec = assign if to_grid is None else to_grid(assign)
            self.record_clusters(rec, spatial_shape, K, kind=kind, meta=dict(record_meta or {}))
        return out
