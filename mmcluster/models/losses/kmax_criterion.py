"""kMaX-DeepLab training objective: Hungarian matching, target padding, the four losses, deep supervision.

Papers: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.4; Huiyu Wang et al., "MaX-DeepLab"
(CVPR 2021). Official PyTorch code ``SetCriterion`` (``criterion.py``). Weights as published (official
``config.py`` / ``kmax_r50.yaml``): class 3.0, dice 3.0, mask-ID 0.3, instance discrimination 1.0, auxiliary
semantic 1.0; ``no_object_weight`` (the clamp of the PQ weights) 1e-5.

Targets per batch (``[B, L, ...]``, from the matching of the final prediction; shared by every auxiliary
prediction, ``share_final_matching=True`` as official):

* ``masks``: ground-truth masks placed at their matched query, divided by ``max(sum over queries, 1)``
  (overlaps sum to one);
* ``labels``: matched class, void (``K``) elsewhere;
* ``mask_weight``: matched class probability clamped at ``no_object_weight``, 0 for unmatched queries;
* ``class_weight``: matched dice, for unmatched queries the fraction of their (softmax) mask on unlabelled
  pixels, clamped at ``no_object_weight``;
* ``void_mask``: pixels without a ground-truth mask; ``inverse_area``: ``HW / area`` of each pixel's mask.

Losses: ``loss_cls``, ``loss_dice`` (:class:`KMaXPQLoss`), ``loss_mask`` (mask-ID CE), ``loss_insdis`` on
the final and every auxiliary prediction (suffix ``_{i}``), ``loss_aux_semantic`` on the final one only.
"""
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmcluster.registry import MODELS, register_module
from .kmax_aux_semantic_loss import KMaXAuxSemanticLoss
from .kmax_insdis_loss import KMaXPixelInsDisLoss
from .kmax_mask_id_loss import KMaXMaskIDLoss
from .kmax_matcher import kmax_hungarian_match
from .kmax_pq_loss import KMaXPQLoss

__all__ = ['KMaXCriterion', 'kmax_targets']


@torch.no_grad()
def kmax_targets(pred_logits: Tensor, pred_masks: Tensor, gt_labels: List[Tensor], gt_masks: List[Tensor],
                 indices, matched_dice: List[Tensor], matched_prob: List[Tensor], num_classes: int,
                 no_object_weight: float = 1e-5) -> Dict[str, Tensor]:
    """The padded targets of the module docstring."""
    b, num_queries = pred_masks.shape[:2]
    masks = torch.zeros_like(pred_masks)
    labels = torch.full((b, num_queries), num_classes, dtype=torch.long, device=pred_masks.device)
    mask_weight = pred_masks.new_zeros(b, num_queries)
    for i, (src, tgt) in enumerate(indices):
        masks[i, src] = gt_masks[i][tgt].to(masks)
        labels[i, src] = gt_labels[i][tgt]
        mask_weight[i, src] = matched_prob[i].to(mask_weight).clamp(min=no_object_weight)
    masks = masks / masks.sum(1, keepdim=True).clamp(min=1.0)
    void_mask = masks.sum(1) < 1
    area = masks.sum((2, 3))
    pixel_area = torch.einsum('bnhw,bn->bhw', masks, area)
    inverse_area = pixel_area.shape[1] * pixel_area.shape[2] / pixel_area.clamp(min=1.0)
    probs = pred_masks.detach().softmax(1).flatten(2)
    class_weight = (probs * void_mask.flatten(1)[:, None].to(probs)).sum(-1) / (probs.sum(-1) + 1e-5)
    for i, (src, _) in enumerate(indices):
        class_weight[i, src] = matched_dice[i].to(class_weight)
    class_weight = class_weight.clamp(min=no_object_weight)
    return dict(masks=masks, labels=labels, mask_weight=mask_weight, class_weight=class_weight,
                void_mask=void_mask, inverse_area=inverse_area)


@register_module(MODELS)
class KMaXCriterion(nn.Module):
    """kMaX-DeepLab losses (see the module docstring).

    Args:
        num_classes: ``K`` (things + stuff, void excluded).
        pq_loss: :class:`KMaXPQLoss` config. Defaults to class 3.0 / dice 3.0.
        mask_id_loss: :class:`KMaXMaskIDLoss` config (weight 0.3); ``None`` to disable.
        insdis_loss: :class:`KMaXPixelInsDisLoss` config (weight 1.0); ``None`` to disable.
        aux_semantic_loss: :class:`KMaXAuxSemanticLoss` config (weight 1.0); ``None`` to disable.
        no_object_weight: clamp of the PQ weights. Defaults to 1e-5.
        deep_supervision: add the losses of every auxiliary prediction. Defaults to True.
        share_final_matching: auxiliary predictions reuse the final matching. Defaults to True (official).
    """

    def __init__(self, num_classes: int, pq_loss: Optional[dict] = None, mask_id_loss: Optional[dict] = {},
                 insdis_loss: Optional[dict] = {}, aux_semantic_loss: Optional[dict] = {},
                 no_object_weight: float = 1e-5, deep_supervision: bool = True,
                 share_final_matching: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.no_object_weight = no_object_weight
        self.deep_supervision = deep_supervision
        self.share_final_matching = share_final_matching
        self.pq_loss = KMaXPQLoss(**(pq_loss or {}))
        self.mask_id_loss = KMaXMaskIDLoss(**mask_id_loss) if mask_id_loss is not None else None
        self.insdis_loss = KMaXPixelInsDisLoss(**insdis_loss) if insdis_loss is not None else None
        self.aux_semantic_loss = (KMaXAuxSemanticLoss(num_classes, **aux_semantic_loss)
                                  if aux_semantic_loss is not None else None)

    def _match(self, out: Dict, gt_labels, gt_masks) -> Dict[str, Tensor]:
        indices, dice, prob = kmax_hungarian_match(out['pred_logits'], out['pred_masks'], gt_labels, gt_masks,
                                                   self.pq_loss.mask_void)
        return kmax_targets(out['pred_logits'], out['pred_masks'], gt_labels, gt_masks, indices, dice, prob,
                            self.num_classes, self.no_object_weight)

    def _losses(self, out: Dict, targets: Dict[str, Tensor], suffix: str = '') -> Dict[str, Tensor]:
        losses = self.pq_loss(out['pred_logits'], out['pred_masks'], targets)
        if self.mask_id_loss is not None:
            losses['loss_mask'] = self.mask_id_loss(out['pred_masks'], targets)
        if self.insdis_loss is not None:
            losses['loss_insdis'] = self.insdis_loss(out['pixel_feature'], targets)
        return {k + suffix: v for k, v in losses.items()}

    def forward(self, outputs: Dict, gt_labels: List[Tensor], gt_masks: List[Tensor],
                gt_semantic: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Args:
            outputs: the decoder's outputs (``pred_logits``, ``pred_masks``, ``pixel_feature``, ``aux_outputs``,
                optionally ``aux_semantic_pred``), masks at the targets' resolution.
            gt_labels / gt_masks: per image ``[M]`` class ids and ``[M, H, W]`` binary masks.
            gt_semantic: ``[B, H, W]`` semantic labels, ``num_classes`` for void (for the auxiliary loss).
        """
        targets = self._match(outputs, gt_labels, gt_masks)
        losses = self._losses(outputs, targets)
        if self.aux_semantic_loss is not None and 'aux_semantic_pred' in outputs and gt_semantic is not None:
            losses['loss_aux_semantic'] = self.aux_semantic_loss(outputs['aux_semantic_pred'],
                                                                 dict(targets, semantic=gt_semantic))
        if self.deep_supervision:
            for i, aux in enumerate(outputs.get('aux_outputs', [])):
                aux_targets = targets if self.share_final_matching else self._match(aux, gt_labels, gt_masks)
                losses.update(self._losses(aux, aux_targets, f'_{i}'))
        return losses
