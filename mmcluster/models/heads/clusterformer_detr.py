"""ClusterFormer detector in the Deformable-DETR framework (box-level clustering), for mmdet.

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023, Sec. 3.2
and Fig. 1 (COCO detection compared with Deformable-DETR); the detection model was never released. See
``docs/clusterformer.md``. In mmdet 3.x the transformer decoder belongs to the detector (``DeformableDETR``),
not to its bbox head, so this module is a detector subclass; the head stays mmdet's ``DeformableDETRHead``.

:class:`ClusterFormerDETR` is mmdet's :class:`~mmdet.models.detectors.DeformableDETR` (backbone, neck,
multi-scale deformable encoder, reference points and iterative box refinement, Hungarian matching with
focal / L1 / GIoU costs and losses) with two changes:

* every decoder layer's cross-attention (multi-scale deformable attention) is the recurrent clustering
  :class:`~mmcluster.models.layers.RecurrentClusteringCrossAttention` over the whole flattened multi-level
  memory (the object queries are the centres; E-step softmax over the queries; ``T = num_iters``; padded
  memory tokens get no responsibility). The reference points are still predicted and refined by the box
  branches (``with_box_refine``) but are not used by the clustering;
* ``query_init='encoder'`` (default, "centres from encoder"): the content queries are the centres of a
  :class:`~mmcluster.models.layers.RecurrentCrossAttentionClustering` on the lowest-resolution encoder level,
  initialised by adaptive average pooling of its valid (non-padded) tokens to the most square
  ``q_h x q_w = num_queries`` grid plus the FFN of Eq. 5; the positional queries (and the reference points
  predicted from them) stay learned (``query_embedding`` holds only them, ``embed_dims`` wide).
  ``query_init='free'`` is Deformable-DETR's learned query embedding. Two-stage mode keeps mmdet's proposal
  queries (``query_init`` must then be ``'free'``).
"""
from typing import Dict, Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.detectors import DeformableDETR
from torch import Tensor

from mmcluster.models.layers.clusterformer_clustering import RecurrentCrossAttentionClustering
from mmcluster.models.layers.clusterformer_cross_attention import RecurrentClusteringCrossAttention
from mmcluster.registry import MODELS, register_module
from .clusterformer_head import QUERY_INITS, query_grid

__all__ = ['ClusterFormerDETR']


@register_module(MODELS)
class ClusterFormerDETR(DeformableDETR):
    """Deformable DETR with recurrent-clustering decoder cross-attention (see the module docstring).

    Args:
        query_init: ``'encoder'`` (default) or ``'free'``.
        num_iters: recurrences ``T`` of every decoder cross-attention and of the encoder-centre clustering.
        residual: M-step residual (Algorithm 1) or not (Eq. 3).
        temperature: E-step temperature (``None`` = 1).
        mass_norm: normalise the M-steps by the responsibility mass (not in the paper).
        update: centre-update strategy (``'rca'``, ``'kmeans'``, ``'cross_attn'``, ``'cosine'``).
        **kwargs: mmdet ``DeformableDETR`` arguments (``backbone``, ``neck``, ``encoder``, ``decoder`` (paper:
            six layers), ``bbox_head``, ``positional_encoding``, ``num_queries``, ``with_box_refine``, ...).
    """

    def __init__(self, *args, query_init: str = 'encoder', num_iters: int = 3, residual: bool = True,
                 temperature: Optional[float] = None, mass_norm: bool = False, update: str = 'rca',
                 **kwargs) -> None:
        if query_init not in QUERY_INITS:
            raise ValueError(f'query_init must be one of {QUERY_INITS}, got {query_init!r}')
        if query_init == 'encoder' and kwargs.get('as_two_stage', False):
            raise ValueError("as_two_stage=True takes its queries from the proposals: use query_init='free'")
        # read by _init_layers, which the parent's __init__ calls
        self._cf = dict(query_init=query_init, num_iters=num_iters, residual=residual, temperature=temperature,
                        mass_norm=mass_norm, update=update)
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        cf = self._cf
        self.query_init = cf['query_init']
        for layer in self.decoder.layers:
            old = layer.cross_attn
            layer.cross_attn = RecurrentClusteringCrossAttention(
                old.embed_dims, old.num_heads, num_iters=cf['num_iters'], residual=cf['residual'],
                temperature=cf['temperature'], mass_norm=cf['mass_norm'], update=cf['update'])
        if self.query_init == 'encoder':
            self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims)  # positional queries only
            heads = self.decoder.layers[0].cross_attn.num_heads
            self.query_clustering = RecurrentCrossAttentionClustering(
                self.embed_dims, num_heads=heads, num_iters=cf['num_iters'], residual=cf['residual'],
                temperature=cf['temperature'], mass_norm=cf['mass_norm'], update=cf['update'],
                num_centers=query_grid(self.num_queries), center_ffn=True)

    def encoder_centres(self, memory: Tensor, memory_mask: Optional[Tensor], spatial_shapes: Tensor) -> Tensor:
        """Content queries ``[B, Q, C]``: clustering of the lowest-resolution encoder level."""
        h, w = (int(v) for v in spatial_shapes[-1])
        start = int(spatial_shapes[:-1].prod(dim=1).sum()) if len(spatial_shapes) > 1 else 0
        tokens = memory[:, start:start + h * w]
        B, _, C = tokens.shape
        valid = None if memory_mask is None else ~memory_mask[:, start:start + h * w]
        weight = tokens.new_ones(B, 1, h, w) if valid is None else valid.view(B, 1, h, w).to(tokens.dtype)
        grid = tokens.transpose(1, 2).reshape(B, C, h, w)
        qh_qw = self.query_clustering.num_centers
        self.query_clustering.warn_repeated_centres(h, w)
        # average over the valid tokens of each adaptive-pool bin (a bin with none gets zeros)
        pooled = F.adaptive_avg_pool2d(grid * weight, qh_qw) / F.adaptive_avg_pool2d(weight, qh_qw).clamp(min=1e-6)
        c0 = self.query_clustering.apply_center_ffn(pooled.flatten(2).transpose(1, 2))
        return self.query_clustering(tokens, hw_shape=(h, w), centres=c0, valid=valid)

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor, spatial_shapes: Tensor) -> Tuple[Dict, Dict]:
        if self.query_init == 'free' or self.as_two_stage:
            return super().pre_decoder(memory, memory_mask, spatial_shapes)
        batch_size = memory.shape[0]
        query_pos = self.query_embedding.weight.unsqueeze(0).expand(batch_size, -1, -1)
        query = self.encoder_centres(memory, memory_mask, spatial_shapes)
        reference_points = self.reference_points_fc(query_pos).sigmoid()
        decoder_inputs_dict = dict(query=query, query_pos=query_pos, memory=memory,
                                   reference_points=reference_points)
        head_inputs_dict = dict(enc_outputs_class=None, enc_outputs_coord=None) if self.training else dict()
        return decoder_inputs_dict, head_inputs_dict
