"""Pixel-wise instance discrimination loss of CMT-DeepLab / kMaX-DeepLab.

Papers: Qihang Yu et al., "CMT-DeepLab" (CVPR 2022), Sec. 3.4; "k-means Mask Transformer" (ECCV 2022),
Sec. 3.4. Official PyTorch code ``pixelwise_insdis_loss`` (after deeplab2 ``max_deeplab_loss.py``).

``k`` pixels are sampled without replacement (Gumbel top-k) with logits ``tau_s log(HW / area(p))``
(``area(p)`` = area of the pixel's ground-truth mask, so small masks are sampled more; unlabelled pixels get
-99999). With the sampled normalised pixel features ``f`` (``[B, D, k]``) and their target one-hots ``t``
(``[B, M, k]``)::

    G_ij  = t_i . t_j,   G_.j <- G_.j / max(sum_i G_ij, 1)          (targets, a distribution per column)
    S_ij  = f_i . f_j / tau                                         (tau = 0.3)
    L     = mean_b [ sum_i CE(S_i., G_i.) / #{i : CE != 0} ]

The target normalisation is by column, the official code's (``sum(dim=1)``); the sampling is random (seed it
for reproducible values).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcluster.registry import MODELS, register_module
from .kmax_pq_loss import masked_mean_nonzero

__all__ = ['gumbel_topk', 'sample_pixels', 'kmax_pixel_insdis_loss', 'KMaXPixelInsDisLoss', 'MASKING_CONSTANT']

MASKING_CONSTANT = -99999.0


def gumbel_topk(logits: Tensor, k: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Indices of ``k`` samples without replacement from ``softmax(logits)`` (Gumbel top-k), ``[B, k]``."""
    u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device, generator=generator)
    u = u.clamp(min=torch.finfo(logits.dtype).tiny)  # torch.rand is [0, 1)
    return torch.topk(logits - torch.log(-torch.log(u)), min(k, logits.shape[-1]), dim=-1).indices


def sample_pixels(void_mask: Tensor, inverse_area: Tensor, temperature: float, k: int,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """``[B, k]`` pixel indices sampled by ``temperature * log(inverse_area)``, unlabelled pixels masked."""
    logits = torch.log(inverse_area) * temperature + void_mask.to(inverse_area) * MASKING_CONSTANT
    return gumbel_topk(logits, k, generator)


def kmax_pixel_insdis_loss(pixel_feature: Tensor, target_masks: Tensor, index: Tensor,
                           temperature: float = 0.3) -> Tensor:
    """Loss on the sampled pixels ``index [B, k]``; ``pixel_feature [B, D, HW]``, ``target_masks [B, M, HW]``."""
    t = torch.gather(target_masks, 2, index.unsqueeze(1).expand(-1, target_masks.shape[1], -1))
    gt_sim = torch.einsum('bnk,bnj->bkj', t, t)
    gt_sim = gt_sim / gt_sim.sum(dim=1, keepdim=True).clamp(min=1.0)
    f = torch.gather(pixel_feature, 2, index.unsqueeze(1).expand(-1, pixel_feature.shape[1], -1))
    logits = torch.einsum('bck,bcj->bkj', f, f) / temperature
    return masked_mean_nonzero(F.cross_entropy(logits, gt_sim, reduction='none'))


@register_module(MODELS)
class KMaXPixelInsDisLoss(nn.Module):
    """Pixel-wise instance discrimination.

    Args:
        loss_weight: defaults to 1.0 (official).
        sample_k: sampled pixels. Defaults to 4096.
        sample_temperature: ``tau_s``. Defaults to 1.5 (COCO / ADE20K; 0.6 Cityscapes).
        temperature: ``tau``. Defaults to 0.3.
    """

    def __init__(self, loss_weight: float = 1.0, sample_k: int = 4096, sample_temperature: float = 1.5,
                 temperature: float = 0.3) -> None:
        super().__init__()
        self.loss_weight, self.sample_k = loss_weight, sample_k
        self.sample_temperature, self.temperature = sample_temperature, temperature

    def forward(self, pixel_feature: Tensor, targets: dict, generator: Optional[torch.Generator] = None) -> Tensor:
        index = sample_pixels(targets['void_mask'].flatten(1), targets['inverse_area'].flatten(1),
                              self.sample_temperature, self.sample_k, generator)
        return self.loss_weight * kmax_pixel_insdis_loss(pixel_feature.flatten(2), targets['masks'].flatten(2),
                                                         index, self.temperature)
