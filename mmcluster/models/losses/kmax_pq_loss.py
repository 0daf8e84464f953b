"""PQ-style loss of kMaX-DeepLab (MaX-DeepLab's PQ-style loss as implemented by kMaX).

Papers: Huiyu Wang et al., "MaX-DeepLab" (CVPR 2021), Sec. 3.2 (PQ-style loss); Qihang Yu et al., "k-means Mask Transformer"
(ECCV 2022), Sec. 3.4. Official PyTorch code ``focal_cross_entropy_loss`` and ``dice_loss`` (``criterion.py``).

Class term, per query ``l`` with target class ``y_l`` (void for unmatched queries) and weight ``w_l`` (the
matched mask's dice, or for an unmatched query its overlap with the void pixels; clamped at 1e-5)::

    ce_l  = -log softmax(c_l)_{y_l},   alpha_l = 0.75 if y_l is not void else 0.25
    L_cls = mean_b [ sum_l alpha_l w_l ce_l / #{l : alpha_l w_l ce_l != 0} ]

Mask term (dice of the softmax-over-queries masks, void pixels removed, smoothing 1), weighted by the matched
class probability ``q_l`` (0 for unmatched queries, clamped at 1e-5 otherwise)::

    dice_l = 1 - (2 sum_p a_lp t_lp + 1) / (sum_p a_lp + sum_p t_lp + 1)
    L_dice = mean_b [ 0.75 / L * sum_l q_l dice_l ]

(the factor 0.75 is deeplab2's loss modifier as folded in by the official PyTorch code).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcluster.registry import MODELS, register_module

__all__ = ['kmax_pq_class_loss', 'kmax_pq_dice_loss', 'masked_mean_nonzero', 'KMaXPQLoss']


def masked_mean_nonzero(loss: Tensor) -> Tensor:
    """``[B, N]`` -> mean over the batch of (sum / number of non-zero entries, at least 1)."""
    loss = loss.flatten(1)
    count = (loss != 0).to(loss).sum(-1).clamp(min=1.0)
    return torch.nan_to_num(loss.sum(-1) / count, nan=0.0, posinf=0.0, neginf=0.0).mean()


def kmax_pq_class_loss(class_logits: Tensor, target_classes: Tensor, weight: Tensor, alpha: float = 0.75) -> Tensor:
    """Class term. ``class_logits [B, L, K+1]``, ``target_classes [B, L]`` (``K`` = void), ``weight [B, L]``."""
    ce = F.cross_entropy(class_logits.transpose(1, 2), target_classes, reduction='none')
    is_void = (target_classes == class_logits.shape[-1] - 1).to(ce)
    alpha_w = alpha * (1 - is_void) + (1 - alpha) * is_void
    return masked_mean_nonzero(alpha_w * ce * weight)


def kmax_pq_dice_loss(mask_logits: Tensor, target_masks: Tensor, void_mask: Tensor, weight: Tensor,
                      mask_void: bool = True, modifier: float = 0.75) -> Tensor:
    """Mask term. ``mask_logits / target_masks [B, L, HW]``, ``void_mask [B, HW]`` bool, ``weight [B, L]``."""
    probs = mask_logits.softmax(1)
    if mask_void:
        probs = probs.masked_fill(void_mask.unsqueeze(1), 0)
    inter = 2 * (probs * target_masks).sum(-1) + 1.0
    denom = probs.sum(-1) + target_masks.sum(-1) + 1.0
    loss = (1.0 - torch.nan_to_num(inter / denom, nan=0.0, posinf=0.0, neginf=0.0)) * weight
    return (loss.sum(1) * modifier / probs.shape[1]).mean()


@register_module(MODELS)
class KMaXPQLoss(nn.Module):
    """PQ-style loss (class and dice terms, see the module docstring).

    Args:
        class_weight: weight of the class term. Defaults to 3.0 (official).
        dice_weight: weight of the dice term. Defaults to 3.0 (official).
        alpha: focal alpha of non-void targets. Defaults to 0.75.
        mask_void: remove unlabelled pixels from the dice. Defaults to True.
    """

    def __init__(self, class_weight: float = 3.0, dice_weight: float = 3.0, alpha: float = 0.75,
                 mask_void: bool = True) -> None:
        super().__init__()
        self.class_weight, self.dice_weight, self.alpha, self.mask_void = class_weight, dice_weight, alpha, mask_void

    def forward(self, class_logits: Tensor, mask_logits: Tensor, targets: dict) -> dict:
        return dict(
            loss_cls=self.class_weight * kmax_pq_class_loss(class_logits, targets['labels'],
                                                            targets['class_weight'], self.alpha),
            loss_dice=self.dice_weight * kmax_pq_dice_loss(mask_logits.flatten(2), targets['masks'].flatten(2),
                                                           targets['void_mask'].flatten(1),
                                                           targets['mask_weight'], self.mask_void))
