"""ResNet with HCFormer's backbone hooks: DCNv2 downsampling (paper Sec. 2.5, Appendix E.2) and the outputs of
the first block of each downsampling stage (the official coarse maps of the clustering pairs).

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949). The official ``HCResNet`` (torchvision ResNet-50, FrozenBN) clusters the pairs
``(res_l, layer_{l+1}[0](res_l))``: the coarse map is the output of the first (downsampling) block of the next
stage, not the stage's output. :class:`HCResNet` is mmdet's :class:`~mmdet.models.backbones.ResNet` unchanged in
its feed-forward path, with two options:

* ``dcn_downsampling=True``: the strided 3x3 convolution of the first block of stages 2-4 (``conv2`` of a
  ``pytorch``-style Bottleneck, ``conv1`` of a BasicBlock or a ``caffe``-style Bottleneck) and the strided 1x1
  convolution of its shortcut become modulated deformable convolutions (DCNv2) exactly as the official
  ``DeformConv``: the offsets and mask of **both** are predicted by a **3x3, padding-1** convolution with the
  layer's stride and ``3 k^2`` output channels (27 for the 3x3, 3 for the 1x1 shortcut), zero-initialised;
  offsets = first two thirds, mask = sigmoid of the last third; and the deformable convolution has a
  **bias**, zero-initialised. (mmcv's ``ModulatedDeformConv2dPack`` would predict the shortcut's offsets with a
  1x1 convolution and, like the replaced convolution, have no bias: both block official weights and change the
  model.) The main weight keeps the convolution's state-dict key (``layerN.0.conv2.weight``,
  ``layerN.0.downsample.0.weight``), so ImageNet checkpoints (``torchvision://resnet50``) load unchanged; only
  the new ``bias`` and ``conv_offset.*`` are missing. With zero offsets and mask ``sigmoid(0) = 0.5`` each
  layer starts as half the plain strided convolution (the standard DCNv2 start, also the official code's).
  Shortcuts with ``avg_down`` (pooling, then a stride-1 convolution) keep their convolution.
* ``first_block_outs=True``: ``forward`` returns the stage outputs followed by the first-block outputs of
  stages 2-4, i.e. ``(res2, res3, res4, res5, b3, b4, b5)`` with ``b_{l+1} = layer_{l+1}[0](res_l)``; the
  :class:`~mmcluster.models.necks.HCFormerNeck` with ``coarse_inputs='first_block'`` pairs ``res_l`` with
  ``b_{l+1}``. Needs ``out_indices=(0, 1, 2, 3)``.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from mmcv.ops import ModulatedDeformConv2d, modulated_deform_conv2d
from mmdet.models.backbones import ResNet
from mmengine.model import Sequential
from torch import Tensor

from mmcluster.models.utils.input_check import register_input_check
from mmcluster.registry import MODELS, register_module


class DCNv2Downsample(ModulatedDeformConv2d):
    """A strided modulated deformable convolution replacing a downsampling convolution (official
    ``DeformConv``).

    Offsets and mask come from ``conv_offset``: a 3x3, padding-1 convolution with the layer's stride and
    ``3 k^2`` output channels, whatever the kernel size ``k`` (so a 1x1 shortcut sees a 3x3 neighbourhood to
    place its one sampling point); chunk order offsets-y/x then mask, as mmcv's and the official layer's.

    ``init_weights`` re-initialises the main weight like mmdet's ResNet initialises a ``Conv2d`` (Kaiming
    normal, fan-out, ReLU) and zero-initialises the bias and the offset/mask convolution (zero offsets, mask
    0.5). mmengine calls it after the parent's layer-wise init and before any ``Pretrained`` init_cfg, which
    then overwrites the main weight.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: of the replaced convolution.
        bias: give the deformable convolution a bias (official: True).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=2, padding=0,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.conv_offset = nn.Conv2d(in_channels, 3 * self.kernel_size[0] * self.kernel_size[1], 3,
                                     stride=self.stride, padding=1, bias=True)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode='fan_out', nonlinearity='relu')
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if hasattr(self, 'conv_offset'):  # not yet built when the parent constructor calls init_weights
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        o1, o2, mask = torch.chunk(self.conv_offset(x), 3, dim=1)
        return modulated_deform_conv2d(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask), self.weight,
                                       self.bias, self.stride, self.padding, self.dilation, self.groups,
                                       self.deform_groups)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> 'DCNv2Downsample':
        if conv.groups != 1 or conv.dilation not in (1, (1, 1)):
            raise ValueError('grouped or dilated downsampling convolutions are not supported')
        dcn = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, bias=True).to(conv.weight.device, conv.weight.dtype)
        dcn.weight.data.copy_(conv.weight.data)  # as the official code does (re-initialised by init_weights)
        if conv.bias is not None:
            dcn.bias.data.copy_(conv.bias.data)
        return dcn


def _is_strided(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and max(conv.stride) > 1


@register_module(MODELS)
class HCResNet(ResNet):
    """mmdet ResNet with HCFormer's DCNv2 downsampling and first-block outputs (see the module docstring).

    Backbone conventions are mmdet ResNet's: ``depth`` (18, 34, 50, 101, 152; the variant), ``in_channels``,
    ``out_indices``, ``frozen_stages`` (the deformable layers of frozen stages are frozen too), ``norm_eval``,
    ``init_cfg`` (``Pretrained`` loads ImageNet or converted weights).

    Deviations from the official ``HCResNet``: BatchNorm with ``requires_grad=False`` and ``norm_eval=True``
    in the configs instead of detectron2's FrozenBatchNorm (same function; the converter adds the
    ``num_batches_tracked`` counters the official checkpoints lack); the official layer casts the input of the
    deformable convolution to float32 under AMP, this one does not.

    Args:
        dcn_downsampling: replace the strided convolutions of the first block of stages 2-4 (and of its
            shortcut) by DCNv2. Defaults to False (``RESNETS.DOWNSAMPLING='conv'``); the HCFormer ResNet
            configs set True (official default ``'deform'``).
        first_block_outs: also return the first-block outputs of stages 2-4 (after the stage outputs).
        *args, **kwargs: :class:`mmdet.models.backbones.ResNet` arguments.
    """

    def __init__(self, *args, dcn_downsampling: bool = False, first_block_outs: bool = False, **kwargs) -> None:
        depth = kwargs.get('depth', args[0] if args else None)
        if depth not in self.arch_settings:
            raise ValueError(f'invalid depth {depth!r} for HCResNet; valid depths: {sorted(self.arch_settings)}')
        super().__init__(*args, **kwargs)
        self.in_channels = kwargs.get('in_channels', 3)  # mmdet's ResNet does not keep it
        register_input_check(self)
        self.dcn_downsampling = dcn_downsampling
        self.first_block_outs = first_block_outs
        if first_block_outs and tuple(self.out_indices) != tuple(range(self.num_stages)):
            raise ValueError(f'first_block_outs needs out_indices={tuple(range(self.num_stages))}, '
                             f'got {self.out_indices}')
        if dcn_downsampling:
            for name in self.res_layers[1:]:
                self._deform_first_block(name)
            self._freeze_stages()  # the new modules of frozen stages must be frozen too

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned maps: the stage outputs of ``out_indices``, then (``first_block_outs``) the
        first-block outputs of stages 2-4 (a stage's first block already has the stage's width)."""
        stage = [self.base_channels * 2**i * self.block.expansion for i in range(self.num_stages)]
        return [stage[i] for i in self.out_indices] + (stage[1:] if self.first_block_outs else [])

    def _deform_first_block(self, layer_name: str) -> None:
        block = getattr(self, layer_name)[0]
        strided = [n for n in ('conv1', 'conv2') if _is_strided(getattr(block, n, None))]
        if not strided:
            raise ValueError(f'{layer_name}[0] has no strided convolution to deform (dilated stage or DCN '
                             'already configured?)')
        setattr(block, strided[0], DCNv2Downsample.from_conv(getattr(block, strided[0])))
        down = block.downsample
        if down is not None and _is_strided(down[0]):
            block.downsample = Sequential(DCNv2Downsample.from_conv(down[0]), *list(down)[1:])
        elif down is not None:  # avg_down: [AvgPool, conv(stride 1), norm] -> keep it, make init reach it
            block.downsample = Sequential(*list(down))

    def train(self, mode: bool = True) -> 'HCResNet':
        super().train(mode)  # re-applies the freezing; mmdet's ``train`` returns None, nn.Module's self
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if not self.first_block_outs:
            return super().forward(x)
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        outs, firsts = [], []
        for i, layer_name in enumerate(self.res_layers):
            for j, block in enumerate(getattr(self, layer_name)):
                x = block(x)
                if j == 0 and i > 0:
                    firsts.append(x)
            outs.append(x)
        return tuple(outs) + tuple(firsts)
