"""HCFormer decode heads for mmseg's ``EncoderDecoder`` (semantic segmentation).

* :class:`HCFormerSegHead`: :class:`~mmcluster.models.heads.HCFormerHead` with mmseg's decode-head interface,
  the way mmseg's ``Mask2FormerHead`` wraps mmdet's: ``loss(x, data_samples, train_cfg)`` turns each
  ``gt_sem_seg`` into one binary mask per present class (``ignore_index`` dropped) and applies the mmdet
  losses; ``predict(x, img_metas, test_cfg)`` returns semantic logits
  ``einsum(softmax(cls)[..., :-1], sigmoid(mask))`` at the padded input size.
* :class:`HCFCNHead`: the per-pixel variant of Appendix E.1 ("HC-FCN-32s"): mmseg's ``FCNHead`` (FCN-32s:
  convolutions + 1x1 classifier) on the stride-32 feature, its class logits decoded through the clustering
  assignments (Eq. 5) to stride ``32 / 2**level`` instead of being upsampled bilinearly; mmseg's
  ``loss_by_feat`` / ``predict_by_feat`` then resize to the label / image size as usual. The decoded
  quantity is the logit map (each decoded logit is a convex combination of the 9 candidate cells' logits);
  the paper does not say whether logits or probabilities are decoded. ``loss_hc_scale`` (the ``loss_scale``
  module) is added to the losses as in HCFormer.

Both take the :class:`~mmcluster.models.necks.HCFeatures` ``(feat, assigns, scales)`` of
:class:`~mmcluster.models.necks.HCFormerNeck` as input (``model.neck``).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from mmseg.models.decode_heads import FCNHead
from torch import Tensor

from mmcluster.models.layers.hc_decode import hc_decode_hierarchy
from mmcluster.registry import MODELS, register_module
from .hcformer_head import SCALE_LOSS, HCFormerHead, scale_losses, unpack_hc_features


def sem_seg_to_instances(batch_data_samples, ignore_index: int = 255) -> Tuple[List[InstanceData], List[dict]]:
    """One binary mask per class present in each ``gt_sem_seg`` (``ignore_index`` excluded)."""
    batch_gt_instances, batch_img_metas = [], []
    for data_sample in batch_data_samples:
        batch_img_metas.append(data_sample.metainfo)
        sem = data_sample.gt_sem_seg.data[0]  # [H, W]
        labels = torch.unique(sem)
        labels = labels[labels != ignore_index]
        masks = (sem[None] == labels[:, None, None]).long()  # [N, H, W]
        batch_gt_instances.append(InstanceData(labels=labels, masks=masks))
    return batch_gt_instances, batch_img_metas


@register_module(MODELS)
class HCFormerSegHead(HCFormerHead):
    """HCFormer head as an mmseg decode head (semantic segmentation).

    Args:
        num_classes: number of semantic classes (no "things"/"stuff" split). Defaults to 150 (ADE20K).
        align_corners: read by ``EncoderDecoder`` for its final resize. Defaults to False.
        ignore_index: label ignored when building the per-class masks. Defaults to 255.
        **kwargs: :class:`HCFormerHead` arguments (``in_channels``, ``feat_channels``, ``transformer_decoder``,
            losses, ``train_cfg``, ...); ``num_things_classes`` / ``num_stuff_classes`` are set from
            ``num_classes``; the default losses are Mask2Former's, named ``mmdet.*`` (give the assigner and
            sampler of ``train_cfg`` as ``mmdet.*`` too, like mmseg's Mask2Former configs).
    """

    def __init__(self, num_classes: int = 150, align_corners: bool = False, ignore_index: int = 255,
                 **kwargs) -> None:
        kwargs.update(num_things_classes=num_classes, num_stuff_classes=0)
        # defaults scoped to mmdet (an mmseg model builds under the mmseg scope, where the bare names
        # CrossEntropyLoss / DiceLoss are mmseg's losses with other signatures)
        kwargs.setdefault('loss_cls', dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                                           reduction='mean', class_weight=[1.0] * num_classes + [0.1]))
        kwargs.setdefault('loss_mask', dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                                            loss_weight=5.0))
        kwargs.setdefault('loss_dice', dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                                            reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0))
        super().__init__(**kwargs)
        self.align_corners = align_corners
        self.ignore_index = ignore_index
        self.out_channels = num_classes  # EncoderDecoder reads it

    def loss(self, x, batch_data_samples, train_cfg=None) -> Dict[str, Tensor]:
        batch_gt_instances, batch_img_metas = sem_seg_to_instances(batch_data_samples, self.ignore_index)
        all_cls_scores, all_mask_preds = self(x, batch_data_samples, decode='all')
        losses = self.loss_by_feat(all_cls_scores, all_mask_preds, batch_gt_instances, batch_img_metas)
        losses.update(self.loss_scales(x))
        return losses

    def predict(self, x, batch_img_metas: List[dict], test_cfg=None) -> Tensor:
        """Semantic logits ``[B, K, H_pad, W_pad]``."""
        all_cls_scores, all_mask_preds = self(x, None, decode='last')
        meta = batch_img_metas[0]
        size = meta['pad_shape'] if 'pad_shape' in meta else meta['img_shape']
        mask_pred = F.interpolate(all_mask_preds[-1], size=tuple(size[:2]), mode='bilinear', align_corners=False)
        cls_score = F.softmax(all_cls_scores[-1], dim=-1)[..., :-1]
        return torch.einsum('bqc,bqhw->bchw', cls_score, mask_pred.sigmoid())


@register_module(MODELS)
class HCFCNHead(FCNHead):
    """HC-FCN-32s (paper Appendix E.1): FCN head on the stride-32 feature, logits decoded by the clusters.

    Args:
        loss_scale: config of the scale regulariser ``loss_hc_scale``
            (:class:`~mmcluster.models.losses.HCScaleLoss`, default as HCFormer's); None disables it.
        **kwargs: mmseg ``FCNHead`` arguments (``in_channels`` = channels of the top feature, ``channels``,
            ``num_convs``, ``concat_input``, ``num_classes``, ...). ``in_index`` is fixed to 0 (the top feature
            of :class:`HCFeatures`) and ``input_transform`` must be None.
    """

    def __init__(self, loss_scale: Optional[dict] = SCALE_LOSS, **kwargs) -> None:
        if kwargs.get('input_transform') is not None or kwargs.get('in_index', 0) != 0:
            raise ValueError('HCFCNHead reads the top feature of HCFeatures: leave in_index=0, input_transform=None')
        kwargs['in_index'] = 0
        super().__init__(**kwargs)
        self.loss_scale = MODELS.build(loss_scale) if loss_scale is not None else None

    def forward(self, inputs) -> Tensor:
        feat, assigns, _ = unpack_hc_features(inputs)
        logits = super().forward([feat])  # [B, K, H/32, W/32]
        return hc_decode_hierarchy(logits, assigns)

    def loss(self, inputs, batch_data_samples, train_cfg) -> Dict[str, Tensor]:
        losses = super().loss(inputs, batch_data_samples, train_cfg)
        losses.update(scale_losses(self.loss_scale, unpack_hc_features(inputs)[2]))
        return losses
