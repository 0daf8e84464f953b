"""Auxiliary semantic loss of kMaX-DeepLab: per-pixel cross-entropy on sampled pixels.

Papers: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.4 (after MaX-DeepLab's auxiliary
semantic loss). Official PyTorch code ``aux_semantic_loss``. ``k`` pixels are sampled as in the instance
discrimination loss (temperature 2.0; ``k = 0`` uses every pixel); the loss is the cross-entropy of the
semantic logits at those pixels, the ignore label (``num_classes``) contributing 0, averaged over the
non-zero entries per image, then over the batch. A prediction at a lower resolution than the labels is
compared with the labels subsampled by the integer stride ``(W_gt - 1) // (W_pred - 1)`` (the official
convention for odd sizes).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcluster.registry import MODELS, register_module
from .kmax_insdis_loss import sample_pixels
from .kmax_pq_loss import masked_mean_nonzero

__all__ = ['kmax_aux_semantic_loss', 'KMaXAuxSemanticLoss']


def kmax_aux_semantic_loss(logits: Tensor, labels: Tensor, ignore_index: int,
                           index: Optional[Tensor] = None) -> Tensor:
    """``logits [B, C, HW]``, ``labels [B, HW]``; ``index [B, k]`` the sampled pixels (all when None)."""
    if index is not None:
        labels = torch.gather(labels, 1, index)
        logits = torch.gather(logits, 2, index.unsqueeze(1).expand(-1, logits.shape[1], -1))
    ce = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction='none')
    return masked_mean_nonzero(ce * (labels != ignore_index).to(ce))


@register_module(MODELS)
class KMaXAuxSemanticLoss(nn.Module):
    """Auxiliary semantic loss.

    Args:
        num_classes: ``K``; the label ``K`` is ignored (void).
        loss_weight: defaults to 1.0 (official).
        sample_k: sampled pixels (0: all). Defaults to 4096.
        sample_temperature: defaults to 2.0.
    """

    def __init__(self, num_classes: int, loss_weight: float = 1.0, sample_k: int = 4096,
                 sample_temperature: float = 2.0) -> None:
        super().__init__()
        self.num_classes, self.loss_weight = num_classes, loss_weight
        self.sample_k, self.sample_temperature = sample_k, sample_temperature

    def forward(self, logits: Tensor, targets: dict, generator: Optional[torch.Generator] = None) -> Tensor:
        labels, void, inv_area = targets['semantic'], targets['void_mask'], targets['inverse_area']
        if logits.shape[-2:] != labels.shape[-2:]:
            stride = (labels.shape[-1] - 1) // max(logits.shape[-1] - 1, 1)
            labels, void, inv_area = (t[:, ::stride, ::stride] for t in (labels, void, inv_area))
            if labels.shape[-2:] != logits.shape[-2:]:
                raise ValueError(f'semantic labels {tuple(labels.shape[-2:])} do not match the prediction '
                                 f'{tuple(logits.shape[-2:])} at stride {stride}')
        index = None
        if self.sample_k > 0:
            index = sample_pixels(void.flatten(1), inv_area.flatten(1), self.sample_temperature, self.sample_k,
                                  generator)
        return self.loss_weight * kmax_aux_semantic_loss(logits.flatten(2), labels.flatten(1), self.num_classes,
                                                         index)
