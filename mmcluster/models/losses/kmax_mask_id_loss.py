"""Mask-ID cross-entropy of kMaX-DeepLab (MaX-DeepLab's auxiliary per-pixel mask classification).

Papers: Huiyu Wang et al., "MaX-DeepLab" (CVPR 2021), Sec. 3.3 (mask-ID cross-entropy); Qihang Yu et al.,
"k-means Mask Transformer" (ECCV 2022), Sec. 3.4. Official PyTorch code ``softmax_ce_loss``. Each labelled
pixel ``p`` is classified over the ``L`` queries against its (overlap-normalised) target distribution
``t_{.p}``::

    ce_p   = -sum_l t_lp log softmax_l(Z)_lp        (0 for unlabelled pixels)
    L_mask = mean_b [ sum_p ce_p / #{p : ce_p != 0} ]
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcluster.registry import MODELS, register_module
from .kmax_pq_loss import masked_mean_nonzero

__all__ = ['kmax_mask_id_loss', 'KMaXMaskIDLoss']


def kmax_mask_id_loss(mask_logits: Tensor, target_masks: Tensor, void_mask: Tensor) -> Tensor:
    """``mask_logits / target_masks [B, L, HW]``, ``void_mask [B, HW]`` bool."""
    ce = F.cross_entropy(mask_logits, target_masks, reduction='none').masked_fill(void_mask, 0)
    return masked_mean_nonzero(ce)


@register_module(MODELS)
class KMaXMaskIDLoss(nn.Module):
    """Mask-ID cross-entropy. Args: ``loss_weight`` (official 0.3)."""

    def __init__(self, loss_weight: float = 0.3) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, mask_logits: Tensor, targets: dict) -> Tensor:
        return self.loss_weight * kmax_mask_id_loss(mask_logits.flatten(2), targets['masks'].flatten(2),
                                                    targets['void_mask'].flatten(1))
