"""Recurrent clustering as the cross-attention of a DETR / Mask2Former decoder layer (ClusterFormer heads).

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023, Sec. 3.2
("the cross-attention of the decoder is the recurrent cross-attention clustering; six layers, T = 3"); the same
K-softmax EM attention is ClustSeg's (Liang et al., ICML 2023). See ``docs/clusterformer.md``.

A drop-in replacement for mmcv's ``MultiheadAttention(batch_first=True)`` in mmdet's
``Mask2FormerTransformerDecoderLayer.cross_attn``: the queries are the cluster centres ``c^(0) = query``, the
keys / values the (projected, level-embedded) pixel-decoder memory. With positional embeddings as in
Mask2Former (``query_pos`` on the queries every iteration, ``key_pos`` on the keys once), per head::

    K = (key + key_pos) W_K,   V = value W_V                  # once
    t = 1..T:  Gamma = softmax over the queries ((c + query_pos) W_Q K^T / tau)   (E-step)
               c <- c + Gamma V                                (M-step, Algorithm 1)
    out = c^(T)

The residual of the M-step is the layer's residual (mmcv's attention returns ``identity + attn``); with
``residual=False`` (Eq. 3) the output is ``query + Gamma^(T) V``. Mask2Former's masked attention is kept
(``use_attn_mask=True``): a masked (query, pixel) pair is excluded from the E-step; a pixel masked for all
queries is unmasked. Records: the inner ``clustering`` module records ``Gamma^(t)`` as kind ``'soft'``
``[B, E, N, Q]`` with ``step=t`` on the memory grid when the caller passes ``key_hw=(h, w)`` (the head does).
"""
from typing import Optional, Sequence

import torch.nn as nn
from torch import Tensor

from mmcluster.models.layers.clusterformer_clustering import RecurrentCrossAttentionClustering

__all__ = ['RecurrentClusteringCrossAttention']


class RecurrentClusteringCrossAttention(nn.Module):
    """K-softmax recurrent clustering cross-attention (mmcv ``MultiheadAttention`` interface, batch first).

    Args:
        embed_dims: channels of queries and memory.
        num_heads: heads.
        num_iters: recurrences ``T`` per layer (paper: 3).
        residual: M-step residual (Algorithm 1, default) or not (Eq. 3).
        temperature: E-step temperature (``None`` = 1, the paper's; no ``1/sqrt(d)``).
        mass_norm: normalise each M-step by the responsibility mass (not in the paper).
        use_attn_mask: honour Mask2Former's attention mask.
        dropout: dropout on the output update (as mmcv's ``proj_drop``).
        batch_first: must be True (mmdet's Mask2Former layers are batch first).
        update: centre-update strategy (``'rca'``, ``'kmeans'``, ``'cross_attn'``, ``'cosine'``).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_iters: int = 3, residual: bool = True,
                 temperature: Optional[float] = None, mass_norm: bool = False, use_attn_mask: bool = True,
                 dropout: float = 0., batch_first: bool = True, update: str = 'rca', **kwargs) -> None:
        super().__init__()
        if not batch_first:
            raise ValueError('RecurrentClusteringCrossAttention is batch first (batch_first=True)')
        kwargs.pop('attn_drop', None)
        kwargs.pop('proj_drop', None)
        if kwargs:
            raise TypeError(f'unexpected arguments {sorted(kwargs)}')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.batch_first = True
        self.use_attn_mask = use_attn_mask
        self.residual = residual
        self.clustering = RecurrentCrossAttentionClustering(
            embed_dims, num_heads=num_heads, num_iters=num_iters, residual=residual, temperature=temperature,
            mass_norm=mass_norm, update=update)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None, query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None, attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, key_hw: Optional[Sequence[int]] = None,
                **kwargs) -> Tensor:
        """``query [B, Q, C]``, ``key`` / ``value [B, N, C]`` -> ``[B, Q, C]``.

        ``attn_mask``: bool ``[B*E, Q, N]`` or ``[Q, N]`` (True = masked), ``key_padding_mask``: bool ``[B, N]``
        (True = padding; such tokens get no responsibility). Without ``key`` the memory ``value`` is also the
        key (Deformable-DETR decoder layers call their cross-attention so); other keyword arguments of the
        caller (reference points, spatial shapes, ...) are ignored.
        """
        if key is None:  # Deformable-DETR decoders pass the memory as ``value`` only
            key = value if value is not None else query
        value = key if value is None else value
        identity = query if identity is None else identity
        B, Q, C = query.shape
        N = key.shape[1]
        E, rca = self.num_heads, self.clustering
        k = rca.k_proj(key if key_pos is None else key + key_pos).view(B, N, E, -1).transpose(1, 2)
        v = rca.v_proj(value).view(B, N, E, -1).transpose(1, 2)
        c0 = query.view(B, Q, E, -1).transpose(1, 2)
        pos = None if query_pos is None else query_pos.view(B, Q, E, -1).transpose(1, 2)
        mask = None
        if self.use_attn_mask and attn_mask is not None:
            mask = attn_mask.view(B, E, Q, N) if attn_mask.dim() == 3 else attn_mask[None, None]
            mask = mask.bool()
        valid = None if key_padding_mask is None else ~key_padding_mask.bool()
        grid = tuple(key_hw) if key_hw is not None else None
        c = rca.cluster(c0, k, v, valid=valid, spatial_shape=grid, query_pos=pos, attn_mask=mask)
        c = c.transpose(1, 2).reshape(B, Q, C)
        # residual: c^(T) - query is the sum of the T M-step updates; Eq. 3: the last M-step alone
        update = c - query if self.residual else c
        return identity + self.dropout(update)
