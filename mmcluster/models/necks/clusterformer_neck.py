"""Concatenating global-average-pooling neck of the released ClusterFormer classifier.

The released code (ClusterFormer/ClusterFormer, ``mmcls/models/necks/gap.py``) modified mmcls'
``GlobalAveragePooling`` so that it pools **every** stage output and concatenates them along the channels
(96 + 192 + 384 + 768 = 1440 for tiny / small), which its ``LinearClsHead(in_channels=1440)`` reads. mmpretrain's
``GlobalAveragePooling`` returns one pooled tensor per stage and its heads use the last one, so this neck is
registered separately.
"""
from typing import Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmcluster.registry import MODELS, register_module

__all__ = ['ConcatGlobalAveragePooling']


@register_module(MODELS)
class ConcatGlobalAveragePooling(BaseModule):
    """Average-pool each input map over its spatial dims and concatenate the results: ``([B, sum C_i],)``.

    Args:
        init_cfg: mmengine init config (the neck has no parameters).
    """

    def __init__(self, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor]:
        if isinstance(inputs, Tensor):
            inputs = (inputs, )
        if not isinstance(inputs, (tuple, list)) or not inputs:
            raise TypeError(f'neck inputs must be a tensor or a non-empty tuple of tensors, got {type(inputs)}')
        return (torch.cat([x.flatten(2).mean(dim=-1) for x in inputs], dim=1), )
