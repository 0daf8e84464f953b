"""kMaX-DeepLab prediction head: class logits per cluster centre and mask logits per pixel (the E-step logits).

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.2 / Fig. 3; official PyTorch code
``kMaXPredictor``. With centre embeddings ``E_m, E_c`` (``[B, C_q, L]``) and pixel features ``P``
(``[B, C_p, H, W]``)::

    P_hat = L2norm_c(BN(W_3 GELU(BN(W_2 GELU(BN(DW5x5(P)))))) + b_3)      # [B, D, H, W], D = 128
    k_l   = BN(W_m E_m)_l                                               # [B, D, L] mask kernels
    Z_lp  = BN_1(<P_hat_p, k_l>)                                        # [B, L, H, W] mask logits
    c_l   = W_c E_c_l + b_c + log((K' - 1) * 0.9 / 0.1) * [void]        # [B, L, K'] class logits

``BN_1`` is a one-channel BatchNorm on all mask logits (weight init 0.1). The void prior is a constant
added to the last (void) logit, as in the official code, so an untrained model predicts void with
probability 0.9.
"""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kmax_conv_bn import KMAX_NORM_CFG, KMaXConvBN, build_kmax_norm, trunc_normal_tf_

__all__ = ['KMaXPredictor', 'void_prior_bias']


def void_prior_bias(num_classes: int, void_prior_prob: float = 0.9) -> float:
    """The constant added to the void logit so that ``softmax`` starts at ``void_prior_prob``."""
    return math.log((num_classes - 1) * void_prior_prob / (1 - void_prior_prob))


class KMaXPredictor(nn.Module):
    """Mask and class prediction from cluster centres and pixel features.

    Args:
        in_channels_pixel: channels of the pixel features.
        num_classes: number of class logits including void (``K' = K + 1``).
        in_channels_query: channels of the centre embeddings. Defaults to 256.
        pixel_channels: hidden channels of the pixel head. Defaults to 256.
        embed_dims: ``D``, channels of the mask-embedding space. Defaults to 128.
        norm_cfg: norm config. Defaults to BN(eps 1e-3, momentum 0.01).

    Output keys: ``class_logits [B, L, K']``, ``mask_logits [B, L, H, W]``, ``pixel_feature [B, D, H, W]``
    (L2-normalised, used by the pixel-wise instance discrimination loss).
    """

    def __init__(self, in_channels_pixel: int, num_classes: int, in_channels_query: int = 256,
                 pixel_channels: int = 256, embed_dims: int = 128,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.pixel_space_head_conv0bnact = KMaXConvBN(
            in_channels_pixel, in_channels_pixel, 5, padding=2, groups=in_channels_pixel, norm_cfg=norm_cfg,
            act='gelu', conv_init='xavier_uniform')
        self.pixel_space_head_conv1bnact = KMaXConvBN(in_channels_pixel, pixel_channels, norm_cfg=norm_cfg,
                                                      act='gelu')
        self.pixel_space_head_last_convbn = KMaXConvBN(pixel_channels, embed_dims, norm_cfg=norm_cfg, bias=True)
        trunc_normal_tf_(self.pixel_space_head_last_convbn.conv.weight, std=0.01)
        self.transformer_mask_head = KMaXConvBN(in_channels_query, embed_dims, conv_type='1d', norm_cfg=norm_cfg)
        self.transformer_class_head = KMaXConvBN(in_channels_query, num_classes, conv_type='1d', norm_cfg=None,
                                                 bias=True)
        trunc_normal_tf_(self.transformer_class_head.conv.weight, std=0.01)
        self.pixel_space_mask_batch_norm = build_kmax_norm(norm_cfg, 1)
        if norm_cfg is not None:
            nn.init.constant_(self.pixel_space_mask_batch_norm.weight, 0.1)

    def forward(self, mask_embeddings: Tensor, class_embeddings: Tensor, pixel_feature: Tensor) -> Dict[str, Tensor]:
        pixel = self.pixel_space_head_conv0bnact(pixel_feature)
        pixel = self.pixel_space_head_conv1bnact(pixel)
        pixel = self.pixel_space_head_last_convbn(pixel)
        pixel = F.normalize(pixel, p=2, dim=1)

        class_logits = self.transformer_class_head(class_embeddings).transpose(1, 2)
        void = torch.zeros(self.num_classes, dtype=class_logits.dtype, device=class_logits.device)
        void[-1] = void_prior_bias(self.num_classes)
        class_logits = class_logits + void

        kernels = self.transformer_mask_head(mask_embeddings)
        mask_logits = torch.einsum('bchw,bcl->blhw', pixel, kernels)
        mask_logits = self.pixel_space_mask_batch_norm(mask_logits.unsqueeze(1)).squeeze(1)
        return dict(class_logits=class_logits, mask_logits=mask_logits, pixel_feature=pixel)
