"""ClusterFormer segmentation head for mmdet's ``Mask2Former`` detector (instance / panoptic segmentation).

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023, Sec. 3.2
and supplementary Table S1 (the downstream models were never released). See ``docs/clusterformer.md``.

:class:`ClusterFormerHead` is mmdet's :class:`~mmdet.models.dense_heads.Mask2FormerHead` (pixel decoder,
multi-scale memory with level embeddings and sine positions, per-layer class / mask predictions, Hungarian
matching, point-sampled CE / dice losses, and in the detector ``MaskFormerFusionHead``) with two changes:

* every decoder layer's cross-attention is the recurrent clustering
  (:class:`~mmcluster.models.layers.RecurrentClusteringCrossAttention`: E-step softmax over the **queries**,
  residual M-step, ``T = num_iters`` iterations with shared projections; the paper uses six layers and
  ``T = 3``); Mask2Former's masked attention is kept unless ``use_attn_mask=False``;
* the content queries are the **centres from the encoder** (Table S1f, ``query_init='encoder'``, default):
  the lowest-resolution memory (stride 32, after its input projection and level embedding) is clustered by a
  :class:`~mmcluster.models.layers.RecurrentCrossAttentionClustering` whose ``num_queries`` centres are
  initialised by adaptive pooling to a ``q_h x q_w`` grid (the most square factorisation of ``num_queries``,
  10 x 10 for 100) and the FFN of Eq. 5, then refined by ``num_iters`` EM iterations. The paper does not say
  which encoder centres it takes; this is our resolution (the backbone's centres are per window and head,
  not one set per image). ``query_init='free'`` keeps Mask2Former's learned ``query_feat`` embeddings
  ("free parameters", Table S1f). The positional queries ``query_embed`` stay learned in both cases.

The mmseg version (semantic segmentation) is :class:`~mmcluster.models.heads.ClusterFormerSegHead`.
"""
import math
from typing import List, Optional, Tuple

import torch
from mmdet.models.dense_heads import Mask2FormerHead
from mmengine.config import ConfigDict
from torch import Tensor

from mmcluster.models.layers.clusterformer_clustering import RecurrentCrossAttentionClustering
from mmcluster.models.layers.clusterformer_cross_attention import RecurrentClusteringCrossAttention
from mmcluster.models.utils.input_check import reject_unknown_kwargs
from mmcluster.registry import MODELS, register_module

QUERY_INITS = ('encoder', 'free')


def query_grid(num_queries: int) -> Tuple[int, int]:
    """The most square ``(q_h, q_w)`` with ``q_h * q_w = num_queries`` and ``q_h <= q_w``."""
    qh = max(d for d in range(1, int(math.isqrt(num_queries)) + 1) if num_queries % d == 0)
    return qh, num_queries // qh


class ClusterFormerDecoderMixin:
    """The ClusterFormer changes to a Mask2Former head (shared by the mmdet and mmseg heads).

    Args:
        query_init: ``'encoder'`` (centres from the encoder, default) or ``'free'`` (learned embeddings).
        num_iters: recurrences ``T`` of every decoder cross-attention and of the encoder-centre clustering.
        residual: M-step residual (Algorithm 1) or not (Eq. 3).
        temperature: E-step temperature (``None`` = 1).
        mass_norm: normalise the M-steps by the responsibility mass (not in the paper).
        use_attn_mask: keep Mask2Former's masked attention in the E-step.
        update: centre-update strategy of the decoder cross-attention (supp. Table S1c): ``'rca'`` (default),
            ``'kmeans'``, ``'cross_attn'`` (vanilla, softmax over the pixels), ``'cosine'``.
        **kwargs: the Mask2Former head's arguments.
    """

    def __init__(self, *args, query_init: str = 'encoder', num_iters: int = 3, residual: bool = True,
                 temperature: Optional[float] = None, mass_norm: bool = False, use_attn_mask: bool = True,
                 update: str = 'rca', **kwargs) -> None:
        if query_init not in QUERY_INITS:
            raise ValueError(f'query_init must be one of {QUERY_INITS}, got {query_init!r}')
        # mmdet's Mask2FormerHead takes ``**kwargs`` and drops them: name a misspelled argument instead of
        # ignoring it (the explicit arguments of the Mask2Former heads -- mmseg's wraps mmdet's -- are valid, and
        # ``strides``, which mmdet's own Mask2Former configs pass and its head ignores)
        heads = [klass.__init__ for klass in type(self).__mro__ if klass.__name__ == 'Mask2FormerHead']
        reject_unknown_kwargs(kwargs, [ClusterFormerDecoderMixin.__init__] + heads, type(self).__name__,
                              accepted=('strides', ))
        # mmdet's head reads its sub-configs by attribute (as built from a config file)
        kwargs = {k: ConfigDict(v) if isinstance(v, dict) and not isinstance(v, ConfigDict) else v
                  for k, v in kwargs.items()}
        super().__init__(*args, **kwargs)
        if 'in_channels' in kwargs:  # the backbone's out_channels (build-time check, channel_check.py)
            self.in_channels = list(kwargs['in_channels'])
        self.query_init = query_init
        for layer in self.transformer_decoder.layers:
            old = layer.cross_attn
            layer.cross_attn = RecurrentClusteringCrossAttention(
                old.embed_dims, old.num_heads, num_iters=num_iters, residual=residual, temperature=temperature,
                mass_norm=mass_norm, use_attn_mask=use_attn_mask, update=update)
        if query_init == 'encoder':
            self.query_feat = None  # the content queries come from the encoder's centres
            self.query_clustering = RecurrentCrossAttentionClustering(
                self.decoder_embed_dims, num_heads=self.num_heads, num_iters=num_iters, residual=residual,
                temperature=temperature, mass_norm=mass_norm, num_centers=query_grid(self.num_queries),
                center_ffn=True, update=update)

    def init_queries(self, memory: Tensor, hw: Tuple[int, int]) -> Tensor:
        """Content queries ``[B, Q, C]`` from the lowest-resolution memory ``[B, h*w, C]``."""
        if self.query_init == 'free':
            return self.query_feat.weight.unsqueeze(0).repeat((memory.shape[0], 1, 1))
        return self.query_clustering(memory, hw_shape=hw)

    def forward(self, x: List[Tensor], batch_data_samples=None) -> Tuple[List[Tensor], List[Tensor]]:
        """Mask2Former's forward with encoder-centre queries and the level grid passed to the clustering."""
        batch_size = x[0].shape[0]
        mask_features, multi_scale_memorys = self.pixel_decoder(x)
        decoder_inputs, decoder_pos, shapes = [], [], []
        for i in range(self.num_transformer_feat_level):
            mem = multi_scale_memorys[i]
            inp = self.decoder_input_projs[i](mem).flatten(2).permute(0, 2, 1)
            decoder_inputs.append(inp + self.level_embed.weight[i].view(1, 1, -1))
            mask = inp.new_zeros((batch_size, ) + mem.shape[-2:], dtype=torch.bool)
            decoder_pos.append(self.decoder_positional_encoding(mask).flatten(2).permute(0, 2, 1))
            shapes.append(tuple(mem.shape[-2:]))
        query_feat = self.init_queries(decoder_inputs[0], shapes[0])
        query_embed = self.query_embed.weight.unsqueeze(0).repeat((batch_size, 1, 1))

        cls_pred_list, mask_pred_list = [], []
        cls_pred, mask_pred, attn_mask = self._forward_head(query_feat, mask_features, shapes[0])
        cls_pred_list.append(cls_pred)
        mask_pred_list.append(mask_pred)
        for i in range(self.num_transformer_decoder_layers):
            level = i % self.num_transformer_feat_level
            # Mask2Former's rule: a query masked on every pixel attends to all of them
            attn_mask = attn_mask & (attn_mask.sum(-1) != attn_mask.shape[-1]).unsqueeze(-1)
            query_feat = self.transformer_decoder.layers[i](
                query=query_feat, key=decoder_inputs[level], value=decoder_inputs[level], query_pos=query_embed,
                key_pos=decoder_pos[level], cross_attn_mask=attn_mask, query_key_padding_mask=None,
                key_padding_mask=None, key_hw=shapes[level])
            cls_pred, mask_pred, attn_mask = self._forward_head(
                query_feat, mask_features, shapes[(i + 1) % self.num_transformer_feat_level])
            cls_pred_list.append(cls_pred)
            mask_pred_list.append(mask_pred)
        return cls_pred_list, mask_pred_list


@register_module(MODELS)
class ClusterFormerHead(ClusterFormerDecoderMixin, Mask2FormerHead):
    """ClusterFormer head for mmdet's ``Mask2Former`` (see the module docstring).

    Args: those of :class:`ClusterFormerDecoderMixin` and mmdet's ``Mask2FormerHead`` (``in_channels``,
    ``feat_channels``, ``out_channels``, ``num_things_classes``, ``num_stuff_classes``, ``num_queries``,
    ``num_transformer_feat_level``, ``pixel_decoder``, ``transformer_decoder`` (the paper: ``num_layers=6``),
    ``positional_encoding``, losses, ``train_cfg``, ``test_cfg``, ``init_cfg``).
    """
