"""Residual blocks and the resized fuse of the kMaX-DeepLab pixel decoder.

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.3 / Fig. 3 (pixel decoder: axial
blocks at strides 32 and 16, bottleneck blocks at 8 and 4). Official PyTorch code ``SingleBlock``,
``BlockGroup``, ``ResizedFuse`` (after deeplab2 ``axial_blocks.py`` / ``axial_block_groups.py`` /
``resized_fuse.py``); ``LayerNorm`` (channels first) of its ConvNeXt file.

Block (input ``x``, filters ``(f0, f1, f2)``)::

    x  = GELU(x);  s = x or BN(W_s x) when the channels change
    y  = GELU(BN(W_1 x))                                   # conv1_bn_act, f0 channels
    y  = GELU(AxialAttention2D(y))  |  GELU(BN(W_3x3 y))   # 'axial' (2 f1 channels) | 'bottleneck' (f1)
    out = DropPath(BN_0(W_3 y)) + s                         # conv3_bn, f2 channels, BN weight init 0

Filters from a base width ``c``: axial ``(2c, c, 4c)``, bottleneck ``(c, c, 4c)``.
ResizedFuse: ``BN(W_l GELU(low))`` bilinearly resized to the high-resolution map (``align_corners =
(W_low % 2 == 1)``) plus ``BN(W_h GELU(high))`` -- each projection only when the channels differ from
``out_channels`` (else the map passes unchanged).
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kmax_axial_attention import MAX_SPAN, KMaXAxialAttention2D
from .kmax_conv_bn import KMAX_NORM_CFG, KMaXConvBN
from .kmeans_cross_attention import DropPath

__all__ = ['KMaXLayerNorm2d', 'KMaXBlock', 'KMaXBlockGroup', 'KMaXResizedFuse', 'BLOCK_TYPES']

BLOCK_TYPES = ('axial', 'bottleneck')


class KMaXLayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``[B, C, H, W]`` (statistics in float32 under AMP)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class KMaXBlock(nn.Module):
    """One axial-attention or bottleneck residual block (see the module docstring).

    Args:
        in_channels: input channels.
        filters: ``(f0, f1, f2)``.
        block_type: ``'axial'`` or ``'bottleneck'``.
        num_heads: axial-attention heads. Defaults to 8.
        drop_path_rate: stochastic depth. Defaults to 0.
        max_span: relative-position span of the axial attention. Defaults to 255.
        norm_cfg: norm config.
    """

    def __init__(self, in_channels: int, filters: Sequence[int], block_type: str, num_heads: int = 8,
                 drop_path_rate: float = 0.0, max_span: int = MAX_SPAN,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ValueError(f'block_type must be one of {BLOCK_TYPES}, got {block_type!r}')
        self.block_type = block_type
        f0, f1, f2 = filters
        self.conv1_bn_act = KMaXConvBN(in_channels, f0, norm_cfg=norm_cfg, act='gelu')
        if block_type == 'axial':
            self.attention = KMaXAxialAttention2D(f0, f1, num_heads=num_heads, max_span=max_span,
                                                  norm_cfg=norm_cfg)
            mid = self.attention.value_channels
        else:
            self.conv2_bn_act = KMaXConvBN(f0, f1, 3, padding=1, norm_cfg=norm_cfg, act='gelu')
            mid = f1
        self.conv3_bn = KMaXConvBN(mid, f2, norm_cfg=norm_cfg, norm_init=0.0)
        self.shortcut = KMaXConvBN(in_channels, f2, norm_cfg=norm_cfg) if in_channels != f2 else None
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(x)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        x = self.conv1_bn_act(x)
        x = F.gelu(self.attention(x)) if self.block_type == 'axial' else self.conv2_bn_act(x)
        return self.drop_path(self.conv3_bn(x)) + shortcut


class KMaXBlockGroup(nn.Module):
    """``num_blocks`` blocks of one type with base width ``base_filters`` (output ``4 * base_filters``)."""

    def __init__(self, in_channels: int, base_filters: int, num_blocks: int, block_type: str,
                 **block_kwargs) -> None:
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ValueError(f'block_type must be one of {BLOCK_TYPES}, got {block_type!r}')
        c = base_filters
        filters = (2 * c, c, 4 * c) if block_type == 'axial' else (c, c, 4 * c)
        self.blocks = nn.ModuleList()
        for _ in range(num_blocks):
            self.blocks.append(KMaXBlock(in_channels, filters, block_type, **block_kwargs))
            in_channels = filters[-1]

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class KMaXResizedFuse(nn.Module):
    """Fuse a low-resolution map into a high-resolution one (see the module docstring)."""

    def __init__(self, low_in_channels: int, high_in_channels: int, out_channels: int,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        self.conv_bn_low = (KMaXConvBN(low_in_channels, out_channels, norm_cfg=norm_cfg)
                            if low_in_channels != out_channels else None)
        self.conv_bn_high = (KMaXConvBN(high_in_channels, out_channels, norm_cfg=norm_cfg)
                             if high_in_channels != out_channels else None)

    def forward(self, lowres_x: Tensor, highres_x: Tensor) -> Tensor:
        # a Python bool also under tracing (get_flops, ONNX), where a shape element is a tensor
        align_corners = int(lowres_x.shape[-1]) % 2 == 1
        if self.conv_bn_low is not None:
            lowres_x = self.conv_bn_low(F.gelu(lowres_x))
        lowres_x = F.interpolate(lowres_x, size=highres_x.shape[2:], mode='bilinear', align_corners=align_corners)
        if self.conv_bn_high is not None:
            highres_x = self.conv_bn_high(F.gelu(highres_x))
        return lowres_x + highres_x
