"""Hungarian matching of kMaX-DeepLab on the PQ-style similarity.

Papers: Huiyu Wang et al., "MaX-DeepLab" (CVPR 2021), Sec. 3.2 (PQ-style similarity); Qihang Yu et al.,
"k-means Mask Transformer" (ECCV 2022), Sec. 3.4. Official PyTorch code ``HungarianMatcher`` (``matcher.py``).

For prediction ``l`` (class logits ``c_l`` over ``K + 1`` classes, mask logits ``Z_l``) and ground truth ``g``
(class ``k_g``, binary mask ``m_g``)::

    p_l(k)      = softmax(c_l)_k              (void excluded afterwards)
    a_lp        = softmax_l(Z)_lp * [pixel p is labelled]
    dice(l, g)  = sum_p a_lp m_gp / ((sum_p a_lp + sum_p m_gp) / 2 + 1e-5)
    sim(l, g)   = p_l(k_g) * dice(l, g);     matching = argmax of the total similarity (scipy, one to one)
"""
from typing import List, Tuple

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

__all__ = ['kmax_mask_similarity', 'kmax_class_similarity', 'kmax_hungarian_match']


@torch.no_grad()
def kmax_mask_similarity(mask_logits: Tensor, gt_masks: Tensor, mask_void: bool = True) -> Tensor:
    """Dice-style similarity ``[L, M]`` between ``mask_logits [L, HW]`` (softmax over L) and ``gt_masks [M, HW]``."""
    probs = mask_logits.float().softmax(dim=0)
    gt = gt_masks.to(probs)
    if mask_void:
        probs = probs * (gt.sum(0, keepdim=True) > 0).to(probs)
    inter = probs @ gt.T
    denom = (probs.sum(-1)[:, None] + gt.sum(-1)[None, :]) / 2.0
    return inter / (denom + 1e-5)


@torch.no_grad()
def kmax_class_similarity(class_logits: Tensor, gt_labels: Tensor) -> Tensor:
    """``p_l(k_g)`` ``[L, M]`` from ``class_logits [L, K + 1]`` (the last logit is void)."""
    return class_logits.float().softmax(-1)[:, :-1][:, gt_labels]


@torch.no_grad()
def kmax_hungarian_match(class_logits: Tensor, mask_logits: Tensor, gt_labels: List[Tensor],
                         gt_masks: List[Tensor], mask_void: bool = True
                         ) -> Tuple[List[Tuple[Tensor, Tensor]], List[Tensor], List[Tensor]]:
    """Match per image.

    Args:
        class_logits: ``[B, L, K + 1]``.
        mask_logits: ``[B, L, H, W]``.
        gt_labels: per image ``[M]`` class ids.
        gt_masks: per image ``[M, H, W]`` binary masks at the prediction's resolution.
        mask_void: ignore unlabelled pixels in the dice (official default).

    Returns:
        ``indices`` (per image ``(pred_idx, gt_idx)``), the matched dice and the matched class probability
        (per image, aligned with ``indices``).
    """
    indices, dices, probs = [], [], []
    for b in range(class_logits.shape[0]):
        cls_sim = kmax_class_similarity(class_logits[b], gt_labels[b])
        mask_sim = kmax_mask_similarity(mask_logits[b].flatten(1), gt_masks[b].flatten(1), mask_void)
        cost = -(mask_sim * cls_sim)
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        rows = torch.as_tensor(rows, dtype=torch.long, device=class_logits.device)
        cols = torch.as_tensor(cols, dtype=torch.long, device=class_logits.device)
        indices.append((rows, cols))
        dices.append(mask_sim[rows, cols])
        probs.append(cls_sim[rows, cols])
    return indices, dices, probs
