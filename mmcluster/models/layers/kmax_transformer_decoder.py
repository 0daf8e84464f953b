"""kMaX decoder: cluster centres refined by k-means cross-attention layers at strides 32 / 16 / 8.

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.3 / Fig. 3. Official PyTorch code
``kMaXTransformerDecoder`` (bytedance/kmax-deeplab). Centres ``C_0`` = a learned ``[256, L]`` table
(``L = 128`` queries, trunc-normal std 1); ``dec_layers = (2, 2, 2)`` :class:`KMeansCrossAttentionLayer` s read
the pixel decoder's stride-32, 16 and 8 maps; then ``E_c = GELU(BN(W_c C))``, ``E_m = GELU(BN(W_m C))``
and a :class:`KMaXPredictor` on the stride-4 map gives the final class and mask logits. Every layer's own
prediction is an auxiliary output (deep supervision), resized bilinearly to the final mask size
(``align_corners = (W % 2 == 1)``).

The auxiliary semantic head of the official decoder (training only) is
:class:`~mmcluster.models.layers.KMaXSemanticPredictor`, a separate module of the head here.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .kmax_conv_bn import KMAX_NORM_CFG, KMaXConvBN, trunc_normal_tf_
from .kmax_predictor import KMaXPredictor
from .kmeans_cross_attention import KMeansCrossAttentionLayer, kmax_resize

__all__ = ['KMaXTransformerDecoder']


class KMaXTransformerDecoder(nn.Module):
    """kMaX decoder (see the module docstring).

    Args:
        num_classes: classes without void (``K``); the predictors output ``K + 1`` logits.
        in_channels: channels of the pixel decoder's stride-32, 16, 8 and 4 maps. Defaults to
            ``(2048, 1024, 512, 256)``.
        num_queries: ``L``. Defaults to 128.
        dec_layers: k-means layers at strides 32 / 16 / 8. Defaults to ``(2, 2, 2)``.
        query_channels: ``D``. Defaults to 256.
        drop_path_rate: stochastic depth of the k-means layers. Defaults to 0 (0.2 in the COCO configs).
        layer_cfg: extra :class:`KMeansCrossAttentionLayer` arguments (``assignment``, ``self_attn_input``,
            ``mask_residual``, ``coord_conv`` ...). Defaults to the official kMaX layer.
        norm_cfg: norm config.
    """

    def __init__(self, num_classes: int, in_channels: Sequence[int] = (2048, 1024, 512, 256),
                 num_queries: int = 128, dec_layers: Sequence[int] = (2, 2, 2), query_channels: int = 256,
                 drop_path_rate: float = 0.0, layer_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        if len(in_channels) != len(dec_layers) + 1:
            raise ValueError(f'in_channels needs one entry per dec_layers stage plus the final map: '
                             f'{len(dec_layers)} + 1 != {len(in_channels)}')
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.dec_layers = tuple(dec_layers)
        self.kmax_transformer_layers = nn.ModuleList()
        for stage, num in enumerate(dec_layers):
            for _ in range(num):
                self.kmax_transformer_layers.append(KMeansCrossAttentionLayer(
                    in_channels[stage], num_classes + 1, in_channels_query=query_channels,
                    drop_path_rate=drop_path_rate, layer_index=len(self.kmax_transformer_layers),
                    norm_cfg=norm_cfg, **(layer_cfg or {})))
        self.cluster_centers = nn.Embedding(query_channels, num_queries)
        trunc_normal_tf_(self.cluster_centers.weight, std=1.0)
        self.class_embedding_projection = KMaXConvBN(query_channels, query_channels, conv_type='1d',
                                                     norm_cfg=norm_cfg, act='gelu')
        self.mask_embedding_projection = KMaXConvBN(query_channels, query_channels, conv_type='1d',
                                                    norm_cfg=norm_cfg, act='gelu')
        self.predictor = KMaXPredictor(in_channels[-1], num_classes + 1, in_channels_query=query_channels,
                                       norm_cfg=norm_cfg)

    def forward(self, multi_scale_features: Sequence[Tensor], panoptic_features: Tensor) -> Dict:
        """Returns ``pred_logits [B, L, K+1]``, ``pred_masks [B, L, H4, W4]``, ``pixel_feature [B, 128, H4, W4]``
        and ``aux_outputs`` (one dict with the same keys per k-means layer, resized to ``H4 x W4``)."""
        if len(multi_scale_features) < len(self.dec_layers):
            raise ValueError(f'expected {len(self.dec_layers)} multi-scale maps, got {len(multi_scale_features)}')
        b = panoptic_features.shape[0]
        centers = self.cluster_centers.weight.unsqueeze(0).expand(b, -1, -1)
        preds: List[Dict[str, Tensor]] = []
        prev_masks = None
        idx = 0
        for stage, num in enumerate(self.dec_layers):
            for _ in range(num):
                centers, pred = self.kmax_transformer_layers[idx](multi_scale_features[stage], centers, prev_masks)
                prev_masks = pred['mask_logits']
                preds.append(pred)
                idx += 1
        final = self.predictor(mask_embeddings=self.mask_embedding_projection(centers),
                               class_embeddings=self.class_embedding_projection(centers),
                               pixel_feature=panoptic_features)
        size = final['mask_logits'].shape[-2:]
        aux = [dict(pred_logits=p['class_logits'], pred_masks=kmax_resize(p['mask_logits'], size),
                    pixel_feature=kmax_resize(p['pixel_feature'], size)) for p in preds]
        return dict(pred_logits=final['class_logits'], pred_masks=final['mask_logits'],
                    pixel_feature=final['pixel_feature'], aux_outputs=aux)
