"""Auxiliary semantic head of kMaX-DeepLab (training only): ASPP on res5 + DeepLabv3+-style low-level fusion.

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.4 (auxiliary semantic loss, after
MaX-DeepLab / Panoptic-DeepLab). Official PyTorch code ``ASPP`` / ``SemanticPredictor`` (COCO/ADE configs)
and the depthwise ``nn.Sequential`` head (``use_aux_semantic_decoder=False``, Cityscapes). ASPP: 1x1 and
three dilated 3x3 convs (rates 6/12/18) and image pooling, 256 ch, projection + dropout 0.1; fusion with the
stride-8 (-> 64 ch) and stride-4 (-> 32 ch) backbone maps via depthwise 5x5 + 1x1 convs; a depthwise 5x5 +
1x1 block and a 1x1 classifier (``num_classes`` outputs, trunc-normal std 0.01). All resizes bilinear with
``align_corners = (W_in % 2 == 1)`` of the ASPP output, as the official code.

Deviation: with a batch of one image in training (and no synchronised BN across processes), the image-pooling
branch's BatchNorm uses its running statistics -- a single value per channel has no batch statistics (the
official code raises there).
"""
from typing import Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .kmax_conv_bn import KMAX_NORM_CFG, KMaXConvBN, trunc_normal_tf_

__all__ = ['KMaXASPP', 'KMaXSemanticPredictor']


class KMaXASPP(nn.Module):
    """Atrous spatial pyramid pooling with GELU (see the module docstring); ``dropout`` after the projection
    (official 0.1)."""

    def __init__(self, in_channels: int, out_channels: int = 256, atrous_rates: Sequence[int] = (6, 12, 18),
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG, dropout: float = 0.1) -> None:
        super().__init__()
        r1, r2, r3 = atrous_rates
        self.aspp_conv0 = KMaXConvBN(in_channels, out_channels, norm_cfg=norm_cfg, act='gelu')
        self.aspp_conv1 = KMaXConvBN(in_channels, out_channels, 3, dilation=r1, padding=r1, norm_cfg=norm_cfg,
                                     act='gelu')
        self.aspp_conv2 = KMaXConvBN(in_channels, out_channels, 3, dilation=r2, padding=r2, norm_cfg=norm_cfg,
                                     act='gelu')
        self.aspp_conv3 = KMaXConvBN(in_channels, out_channels, 3, dilation=r3, padding=r3, norm_cfg=norm_cfg,
                                     act='gelu')
        self.aspp_pool = KMaXConvBN(in_channels, out_channels, norm_cfg=norm_cfg, act='gelu')
        self.proj_conv_bn_act = KMaXConvBN(5 * out_channels, out_channels, norm_cfg=norm_cfg, act='gelu')
        self.proj_drop = nn.Dropout(p=dropout)

    def _image_pool(self, x: Tensor) -> Tensor:
        pooled = F.adaptive_avg_pool2d(x, 1)
        norm = self.aspp_pool.norm
        synced = isinstance(norm, nn.SyncBatchNorm) and dist.is_available() and dist.is_initialized()
        if self.training and x.shape[0] == 1 and not synced and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            # One value per channel has no batch statistics: normalise with the running ones (batch 1).
            y = F.batch_norm(self.aspp_pool.conv(pooled), norm.running_mean, norm.running_var, norm.weight,
                             norm.bias, False, 0.0, norm.eps)
            return self.aspp_pool.act(y)
        return self.aspp_pool(pooled)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self._image_pool(x)
        pooled = F.interpolate(pooled, size=x.shape[-2:], mode='bilinear', align_corners=int(x.shape[-1]) % 2 == 1)
        out = torch.cat([self.aspp_conv0(x), self.aspp_conv1(x), self.aspp_conv2(x), self.aspp_conv3(x), pooled], 1)
        return self.proj_drop(self.proj_conv_bn_act(out))


class KMaXSemanticPredictor(nn.Module):
    """Auxiliary semantic head.

    Args:
        in_channels: channels of res5.
        os8_channels: channels of res3 (stride 8).
        os4_channels: channels of res2 (stride 4).
        num_classes: output logits (official: ``K + 1``, void included, with the decoder variant).
        use_decoder: the ASPP + fusion head (COCO / ADE20K) or the depthwise head on res5 alone
            (``False``, Cityscapes). Defaults to True.
        norm_cfg: norm config.
        aspp_dropout: dropout after the ASPP projection. Defaults to 0.1 (official).
    """

    def __init__(self, in_channels: int, os8_channels: int, os4_channels: int, num_classes: int,
                 use_decoder: bool = True, norm_cfg: Optional[dict] = KMAX_NORM_CFG,
                 aspp_dropout: float = 0.1) -> None:
        super().__init__()
        self.use_decoder = use_decoder
        if not use_decoder:
            self.conv_block_0 = KMaXConvBN(in_channels, in_channels, 5, padding=2, groups=in_channels,
                                           norm_cfg=norm_cfg, act='gelu', conv_init='xavier_uniform')
            self.conv_block_1 = KMaXConvBN(in_channels, 256, norm_cfg=norm_cfg, act='gelu')
        else:
            self.aspp = KMaXASPP(in_channels, 256, norm_cfg=norm_cfg, dropout=aspp_dropout)
            self.low_level_projection_os8 = KMaXConvBN(os8_channels, 64, norm_cfg=norm_cfg, act='gelu')
            self.low_level_fusion_os8_conv0_bn_act = KMaXConvBN(
                320, 320, 5, padding=2, groups=320, norm_cfg=norm_cfg, act='gelu', conv_init='xavier_uniform')
            self.low_level_fusion_os8_conv1_bn_act = KMaXConvBN(320, 256, norm_cfg=norm_cfg, act='gelu')
            self.low_level_projection_os4 = KMaXConvBN(os4_channels, 32, norm_cfg=norm_cfg, act='gelu')
            self.low_level_fusion_os4_conv0_bn_act = KMaXConvBN(
                288, 288, 5, padding=2, groups=288, norm_cfg=norm_cfg, act='gelu', conv_init='xavier_uniform')
            self.low_level_fusion_os4_conv1_bn_act = KMaXConvBN(288, 256, norm_cfg=norm_cfg, act='gelu')
            self.conv_block_0 = KMaXConvBN(256, 256, 5, padding=2, groups=256, norm_cfg=norm_cfg, act='gelu',
                                           conv_init='xavier_uniform')
            self.conv_block_1 = KMaXConvBN(256, 256, norm_cfg=norm_cfg, act='gelu')
        self.final_conv = KMaXConvBN(256, num_classes, norm_cfg=None, bias=True)
        trunc_normal_tf_(self.final_conv.conv.weight, std=0.01)

    def forward(self, x: Tensor, low_features_os8: Tensor, low_features_os4: Tensor) -> Tensor:
        if self.use_decoder:
            x = self.aspp(x)
            align_corners = int(x.shape[-1]) % 2 == 1
            for proj, conv0, conv1, low in (
                    (self.low_level_projection_os8, self.low_level_fusion_os8_conv0_bn_act,
                     self.low_level_fusion_os8_conv1_bn_act, low_features_os8),
                    (self.low_level_projection_os4, self.low_level_fusion_os4_conv0_bn_act,
                     self.low_level_fusion_os4_conv1_bn_act, low_features_os4)):
                low = proj(low)
                x = F.interpolate(x, size=low.shape[-2:], mode='bilinear', align_corners=align_corners)
                x = conv1(conv0(torch.cat([x, low], dim=1)))
        return self.final_conv(self.conv_block_1(self.conv_block_0(x)))
