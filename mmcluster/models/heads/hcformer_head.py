"""HCFormer segmentation head for mmdet's ``Mask2Former`` detector (panoptic / instance segmentation).

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949), Sec. 2.2-2.3, 2.5, 3.1.

:class:`HCFormerHead` is mmdet's :class:`~mmdet.models.dense_heads.Mask2FormerHead` **without a pixel
decoder**:

* memory = ``input_proj(feat) + level_embed`` (one level; 1x1 conv to ``feat_channels``) with a sine positional
  encoding, where ``feat`` is the top (stride-32) feature; mask features = ``mask_proj(feat)`` (1x1 conv to
  ``out_channels``);
* mmdet's ``Mask2FormerTransformerDecoder`` (paper: 8 layers: masked cross-attention -> self-attention -> FFN,
  post-norm), 100 queries; before each layer the attention mask is ``sigmoid(mask) < 0.5`` of the previous
  prediction at stride 32 (no interpolation: memory and masks share the grid) with fully-masked rows reset
  to unmasked; 1 + ``num_layers`` predictions (class logits, Eq. 4 mask logits at stride 32);
* the mask logits are decoded through the assignments (Eq. 5, :func:`~mmcluster.models.layers.hc_decode`),
  coarse-to-fine, to stride ``32 / 2**level`` (stride 4 at level 3): all predictions in ``loss`` (deep
  supervision, gradients reach the clustering modules), only the last one in ``predict`` (then bilinear to the
  padded input size, as mmdet's head does).

Everything else is mmdet's: Hungarian matching with point-sampled costs, ``MaskPseudoSampler``, the
point-sampled CE / dice losses with importance sampling (``get_uncertain_point_coords_with_randomness``),
``preprocess_gt`` and, in the detector, ``MaskFormerFusionHead`` for panoptic / instance / semantic outputs.
The losses also get ``loss_hc_scale``, the L1 regulariser of the clustering scales, computed by the loss module
``loss_scale`` (default ``dict(type='HCScaleLoss', loss_weight=0.1, mode='abs_of_sum')`` = official code
``0.1 * |sum s|``; ``mode='sum_of_abs'`` = paper ``0.1 * sum |s|``; ``None`` disables it).

Official checkpoints (``sem_seg_head.predictor.*`` of ``HCTransformerDecoder``) load through
``tools/model_converters/hcformer2mmcluster.py``; key layout and deviations in ``docs/hcformer.md``. Deviations
from the official decoder: none in the forward computation (same layer order, post-norm, attention-mask rule
and reset, single-level memory with ``level_embed``, sine encoding); in training the official code decodes
the concatenation of all predictions in one call, this head decodes them one by one (same values).

Input contract: ``x`` = ``(feat, assigns[, scales])``, i.e. the :class:`~mmcluster.models.necks.HCFeatures`
that :class:`~mmcluster.models.necks.HCFormerNeck` returns (``assigns`` coarse-to-fine; ``scales`` the
clustering scales, optional: no regulariser without them). mmdet's ``MaskFormer`` / ``Mask2Former`` detector
passes ``neck(backbone(img))`` to ``panoptic_head.loss`` / ``predict`` unchanged, so the head plugs into the
stock detector: ``model = dict(type='Mask2Former', backbone=..., neck=dict(type='HCFormerNeck', ...),
panoptic_head=dict(type='HCFormerHead', ...))``.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import Conv2d
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.models.dense_heads.anchor_free_head import AnchorFreeHead
from mmdet.models.layers import Mask2FormerTransformerDecoder, SinePositionalEncoding
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import TASK_UTILS
from mmengine.config import ConfigDict
from mmengine.model import caffe2_xavier_init
from torch import Tensor

from mmcluster.models.layers.hc_decode import hc_decode_hierarchy
from mmcluster.registry import MODELS, register_module

#: the official regulariser: ``0.1 * |sum_i s_i|`` (``docs/hcformer.md``)
SCALE_LOSS = dict(type='HCScaleLoss', loss_weight=0.1, mode='abs_of_sum')

DECODER_8_LAYERS = dict(
    return_intermediate=True,
    num_layers=8,
    layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.0, batch_first=True),
        cross_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.0, batch_first=True),
        ffn_cfg=dict(embed_dims=256, feedforward_channels=2048, num_fcs=2, ffn_drop=0.0,
                     act_cfg=dict(type='ReLU', inplace=True))),
    init_cfg=None)


def unpack_hc_features(x) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    """``(feat, assigns[, scales])`` -> ``(feat, list(assigns), list(scales))``; a clear error otherwise."""
    ok = (isinstance(x, (tuple, list)) and len(x) in (2, 3) and isinstance(x[0], Tensor)
          and isinstance(x[1], (tuple, list)) and all(isinstance(a, Tensor) for a in x[1]))
    if not ok:
        got = type(x).__name__ + (f' of {len(x)} {[type(v).__name__ for v in x]}' if isinstance(x, (tuple, list))
                                  else '')
        raise TypeError('HCFormer heads expect (feat, assigns[, scales]) as returned by HCFormerNeck '
                        f'(HCFeatures); got {got}. Add neck=dict(type="HCFormerNeck", ...) to the model.')
    scales = list(x[2]) if len(x) == 3 else []
    return x[0], list(x[1]), scales


def scale_losses(loss_scale, scales: Sequence[Tensor]) -> Dict[str, Tensor]:
    """``{'loss_hc_scale': loss_scale(scales)}``, or ``{}`` without a loss module or without scales."""
    if loss_scale is None or not scales:
        return {}
    return dict(loss_hc_scale=loss_scale(scales))


@register_module(MODELS)
class HCFormerHead(Mask2FormerHead):
    """HCFormer head: Mask2Former's masked-attention decoder on the stride-32 feature, cluster-based decoding.

    Args:
        in_channels: channels of the top feature (an int, or the backbone's channel list: its last entry).
        feat_channels: query / memory dims of the transformer decoder. Defaults to 256.
        out_channels: mask-embedding dims. Defaults to 256.
        num_things_classes, num_stuff_classes, num_queries: as in ``Mask2FormerHead``.
        transformer_decoder: ``Mask2FormerTransformerDecoder`` config (default: 8 layers, d 256, 8 heads,
            FFN 2048, dropout 0 -- paper).
        positional_encoding: sine encoding of the memory. Defaults to ``num_feats=128, normalize=True``.
        loss_cls, loss_mask, loss_dice: as in ``Mask2FormerHead`` (weights 2 / 5 / 5).
        loss_scale: config of the scale regulariser ``loss_hc_scale`` (a
            :class:`~mmcluster.models.losses.HCScaleLoss`; default: official, weight 0.1); None disables it.
        enforce_decoder_input_project: keep a 1x1 input projection also when ``in_channels == feat_channels``.
        pixel_decoder: must be None (accepted so that configs inheriting mmdet's Mask2Former can set it so).
        num_transformer_feat_level: must be 1 (single-level memory).
        strides: ignored (the multi-scale strides of an inherited Mask2Former config).
        train_cfg, test_cfg, init_cfg: as in ``Mask2FormerHead``.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 num_queries: int = 100,
                 transformer_decoder: Optional[dict] = None,
                 positional_encoding: dict = dict(num_feats=128, normalize=True),
                 loss_cls: dict = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                                       reduction='mean', class_weight=[1.0] * 133 + [0.1]),
                 loss_mask: dict = dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                                        loss_weight=5.0),
                 loss_dice: dict = dict(type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                                        naive_dice=True, eps=1.0, loss_weight=5.0),
                 loss_scale: Optional[dict] = SCALE_LOSS,
                 enforce_decoder_input_project: bool = False,
                 pixel_decoder: Optional[dict] = None,
                 num_transformer_feat_level: int = 1,
                 strides: Optional[Sequence[int]] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None) -> None:
        # Mask2FormerHead.__init__ builds a pixel decoder: skip it (and AnchorFreeHead's) like mmdet does
        super(AnchorFreeHead, self).__init__(init_cfg=init_cfg)
        if pixel_decoder is not None:
            raise ValueError('HCFormerHead has no pixel decoder (masks are decoded through the clustering '
                             'assignments); set pixel_decoder=None')
        if num_transformer_feat_level != 1:
            raise ValueError(f'HCFormerHead uses a single-level memory; num_transformer_feat_level must be 1, '
                             f'got {num_transformer_feat_level}')
        if not isinstance(in_channels, int):
            in_channels = list(in_channels)[-1]
        self.in_channels = in_channels
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.num_queries = num_queries
        self.num_transformer_feat_level = 1
        self.loss_scale = MODELS.build(loss_scale) if loss_scale is not None else None

        decoder_cfg = ConfigDict(copy.deepcopy(transformer_decoder or DECODER_8_LAYERS))
        self.num_heads = decoder_cfg.layer_cfg.cross_attn_cfg.num_heads
        self.num_transformer_decoder_layers = decoder_cfg.num_layers
        self.transformer_decoder = Mask2FormerTransformerDecoder(**decoder_cfg)
        self.decoder_embed_dims = self.transformer_decoder.embed_dims
        if self.decoder_embed_dims != feat_channels:
            raise ValueError(f'feat_channels ({feat_channels}) must equal the decoder embed_dims '
                             f'({self.decoder_embed_dims})')
        if in_channels != feat_channels or enforce_decoder_input_project:
            self.input_proj = Conv2d(in_channels, feat_channels, kernel_size=1)
        else:
            self.input_proj = nn.Identity()
        self.mask_proj = Conv2d(in_channels, out_channels, kernel_size=1)
        self.decoder_positional_encoding = SinePositionalEncoding(**positional_encoding)
        self.query_embed = nn.Embedding(num_queries, feat_channels)
        self.query_feat = nn.Embedding(num_queries, feat_channels)
        self.level_embed = nn.Embedding(1, feat_channels)
        self.cls_embed = nn.Linear(feat_channels, self.num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, out_channels))

        self.test_cfg = test_cfg
        self.train_cfg = train_cfg
        if train_cfg:
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])
            self.sampler = TASK_UTILS.build(train_cfg['sampler'], default_args=dict(context=self))
            self.num_points = train_cfg.get('num_points', 12544)
            self.oversample_ratio = train_cfg.get('oversample_ratio', 3.0)
            self.importance_sample_ratio = train_cfg.get('importance_sample_ratio', 0.75)
        self.class_weight = loss_cls['class_weight']
        self.loss_cls = MMDET_MODELS.build(loss_cls)
        self.loss_mask = MMDET_MODELS.build(loss_mask)
        self.loss_dice = MMDET_MODELS.build(loss_dice)

    def init_weights(self) -> None:
        if isinstance(self.input_proj, Conv2d):
            caffe2_xavier_init(self.input_proj, bias=0)
        caffe2_xavier_init(self.mask_proj, bias=0)
        for p in self.transformer_decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    def _forward_head(self, decoder_out: Tensor, mask_feature: Tensor,
                      attn_mask_target_size=None) -> Tuple[Tensor, Tensor, Tensor]:
        """Class logits ``[B, Q, K+1]``, mask logits ``[B, Q, h, w]`` (Eq. 4, at the memory's grid) and the
        attention mask ``[B * heads, Q, h * w]`` (``sigmoid < 0.5``, detached) for the next layer."""
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        cls_pred = self.cls_embed(decoder_out)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_feature)
        attn_mask = (mask_pred.detach().flatten(2).sigmoid() < 0.5).unsqueeze(1)
        attn_mask = attn_mask.repeat(1, self.num_heads, 1, 1).flatten(0, 1)
        return cls_pred, mask_pred, attn_mask

    def forward(self, x, batch_data_samples=None, decode: Optional[str] = None) -> Tuple[List[Tensor], List[Tensor]]:
        """Class and mask logits of every decoder stage (1 + ``num_layers``).

        Args:
            x: ``(feat, assigns[, scales])`` (see the module docstring).
            batch_data_samples: unused (kept for mmdet's signature).
            decode: ``'all'`` (decode every prediction to the fine grid), ``'last'`` (only the last one; the
                others stay at stride 32) or ``'none'``. Default: ``'all'`` in training, ``'last'`` in eval.
        """
        feat, assigns, _ = unpack_hc_features(x)
        decode = decode or ('all' if self.training else 'last')
        if decode not in ('all', 'last', 'none'):
            raise ValueError(f"decode must be 'all', 'last' or 'none', got {decode!r}")
        b = feat.shape[0]
        memory = self.input_proj(feat)
        h, w = memory.shape[-2:]
        mask_feature = self.mask_proj(feat)
        pos = self.decoder_positional_encoding(memory.new_zeros((b, h, w), dtype=torch.bool))
        pos = pos.flatten(2).permute(0, 2, 1)
        memory = memory.flatten(2).permute(0, 2, 1) + self.level_embed.weight[0].view(1, 1, -1)
        query_feat = self.query_feat.weight.unsqueeze(0).repeat(b, 1, 1)
        query_embed = self.query_embed.weight.unsqueeze(0).repeat(b, 1, 1)

        cls_pred, mask_pred, attn_mask = self._forward_head(query_feat, mask_feature)
        cls_preds, mask_preds = [cls_pred], [mask_pred]
        for layer in self.transformer_decoder.layers:
            # a query whose mask covers no memory position attends everywhere (else softmax over nothing)
            attn_mask = attn_mask & (attn_mask.sum(-1) != attn_mask.shape[-1]).unsqueeze(-1)
            query_feat = layer(
                query=query_feat, key=memory, value=memory, query_pos=query_embed, key_pos=pos,
                cross_attn_mask=attn_mask, query_key_padding_mask=None, key_padding_mask=None)
            cls_pred, mask_pred, attn_mask = self._forward_head(query_feat, mask_feature)
            cls_preds.append(cls_pred)
            mask_preds.append(mask_pred)

        if decode == 'all':
            mask_preds = [hc_decode_hierarchy(m, assigns) for m in mask_preds]
        elif decode == 'last':
            mask_preds[-1] = hc_decode_hierarchy(mask_preds[-1], assigns)
        return cls_preds, mask_preds

    def loss_scales(self, x) -> Dict[str, Tensor]:
        """``{'loss_hc_scale': loss_scale(scales)}`` from the scales carried by ``x`` (empty without them)."""
        return scale_losses(self.loss_scale, unpack_hc_features(x)[2])

    def loss(self, x, batch_data_samples) -> Dict[str, Tensor]:
        """Mask2Former losses on every (decoded) prediction + ``loss_hc_scale``."""
        batch_img_metas, batch_gt_instances, batch_gt_semantic_segs = [], [], []
        for data_sample in batch_data_samples:
            batch_img_metas.append(data_sample.metainfo)
            batch_gt_instances.append(data_sample.gt_instances)
            batch_gt_semantic_segs.append(data_sample.gt_sem_seg if 'gt_sem_seg' in data_sample else None)
        all_cls_scores, all_mask_preds = self(x, batch_data_samples, decode='all')
        batch_gt_instances = self.preprocess_gt(batch_gt_instances, batch_gt_semantic_segs)
        losses = self.loss_by_feat(all_cls_scores, all_mask_preds, batch_gt_instances, batch_img_metas)
        losses.update(self.loss_scales(x))
        return losses

    def predict(self, x, batch_data_samples) -> Tuple[Tensor, Tensor]:
        """Last prediction: class logits ``[B, Q, K+1]`` and mask logits decoded, then resized to the padded
        input (``batch_input_shape``) for ``MaskFormerFusionHead``."""
        batch_img_metas = [data_sample.metainfo for data_sample in batch_data_samples]
        all_cls_scores, all_mask_preds = self(x, batch_data_samples, decode='last')
        img_shape = batch_img_metas[0]['batch_input_shape']
        mask_pred = F.interpolate(all_mask_preds[-1], size=tuple(img_shape[:2]), mode='bilinear',
                                  align_corners=False)
        return all_cls_scores[-1], mask_pred
