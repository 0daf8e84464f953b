"""L1 regulariser on the scales of HCFormer's clustering modules (paper Sec. 3.1, "L_reg").

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949). Each clustering module has one learnable scale ``s`` (the softmax temperature of Eq. 3,
:class:`~mmcluster.models.layers.HCClustering`); pulling the scales towards 0 hardens the assignments. The
paper writes ``L_reg = sum_i |s_i|``; the official training code adds ``|sum_i s_i|``. Both are the same while
every ``s_i >= 0`` (they start at 0.1); ``mode`` selects one (see ``docs/hcformer.md``).
"""
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmcluster.registry import MODELS, register_module

__all__ = ['HCScaleLoss', 'SCALE_LOSS_MODES']

SCALE_LOSS_MODES = ('abs_of_sum', 'sum_of_abs')


@register_module(MODELS)
class HCScaleLoss(nn.Module):
    """``loss_weight * |sum_i s_i|`` (``mode='abs_of_sum'``, official code) or ``loss_weight * sum_i |s_i|``
    (``mode='sum_of_abs'``, paper).

    Args:
        loss_weight: the weight ``lambda_reg`` (paper and official configs: 0.1).
        mode: ``'abs_of_sum'`` (official code, default) or ``'sum_of_abs'`` (paper).
    """

    def __init__(self, loss_weight: float = 0.1, mode: str = 'abs_of_sum') -> None:
        super().__init__()
        if mode not in SCALE_LOSS_MODES:
            raise ValueError(f'mode must be one of {SCALE_LOSS_MODES}, got {mode!r}')
        self.loss_weight = float(loss_weight)
        self.mode = mode

    def forward(self, scales: Sequence[Tensor]) -> Tensor:
        """The weighted regulariser of the scales (0-d or one-element tensors), a 0-d tensor."""
        if len(scales) == 0:
            raise ValueError('HCScaleLoss needs at least one scale (is the hierarchy level 0?)')
        s = torch.stack([torch.as_tensor(t).reshape(()) for t in scales])
        reg = s.sum().abs() if self.mode == 'abs_of_sum' else s.abs().sum()
        return self.loss_weight * reg

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, mode={self.mode!r}'
