"""Axial attention with learned relative positions, for any input length (kMaX-DeepLab pixel decoder).

Papers: Huiyu Wang et al., "Axial-DeepLab" (ECCV 2020), Sec. 3 (position-sensitive self-attention);
Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.3. Official PyTorch code
``RelativePositionalEncoding`` / ``AxialAttention`` / ``AxialAttention2D`` (bytedance/kmax-deeplab).

For one axis of length ``L`` with per-head ``q, k`` (``[B, h, d_k, L]``) and ``v`` (``[B, h, d_v, L]``)::

    r^q_{lm}, r^k_{lm}, r^v_{lm} = E^q[m - l], E^k[m - l], E^v[m - l]      # relative-position tables
    S_lm = BN(q_l.k_m) + BN(q_l.r^q_lm) + BN(k_m.r^k_lm)                  # one BN over 3h channels
    A    = softmax_m(S)
    y_l  = BN(sum_m A_lm v_m) + BN(sum_m A_lm r^v_lm)                      # one BN over 2 d_v channels

Each table ``E`` holds ``2 * max_span - 1`` rows (offsets ``-(max_span-1) .. max_span-1``; the official
``MAX_SPAN = 255``), the layout of the official ``nn.Embedding``. The official code builds the offset matrix
once for the training size (``query_shape``) and so only runs at that size (every image padded to it); here
the offsets are built for the actual length at every call, so any length works. Offsets beyond
``max_span - 1`` (axes longer than 255) are clipped to the last row (as Axial-DeepLab's relative positions
saturate). At the official size the result equals the official layer.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kmax_attention import LOW_PRECISION
from .kmax_conv_bn import KMAX_NORM_CFG, KMaXConvBN, build_kmax_norm, trunc_normal_tf_

__all__ = ['KMaXRelativePositionalEncoding', 'KMaXAxialAttention', 'KMaXAxialAttention2D', 'MAX_SPAN']

MAX_SPAN = 255


class KMaXRelativePositionalEncoding(nn.Module):
    """Learned relative-position table ``E[offset]`` returned as ``[L, L, depth]`` for any ``L``.

    Args:
        depth: channels per position.
        max_span: offsets ``|m - l| <= max_span - 1`` have their own row. Defaults to 255 (official).
    """

    def __init__(self, depth: int, max_span: int = MAX_SPAN) -> None:
        super().__init__()
        self.max_span = max_span
        self.embeddings = nn.Embedding(2 * max_span - 1, depth)
        trunc_normal_tf_(self.embeddings.weight, std=1.0)

    def forward(self, length: int) -> Tensor:
        pos = torch.arange(length, device=self.embeddings.weight.device)
        offset = (pos[None, :] - pos[:, None]).clamp(-(self.max_span - 1), self.max_span - 1)
        return self.embeddings.weight[offset + self.max_span - 1]


class KMaXAxialAttention(nn.Module):
    """Position-sensitive multi-head attention along one axis of ``x`` ``[N, C, L]``.

    Args:
        in_channels: input channels ``C``.
        key_channels: total key channels ``h * d_k``.
        value_channels: total value channels ``h * d_v`` (the output channels).
        num_heads: heads ``h``. Defaults to 8.
        max_span: see :class:`KMaXRelativePositionalEncoding`.
        norm_cfg: norm config. Defaults to BN(eps 1e-3, momentum 0.01).
    """

    def __init__(self, in_channels: int, key_channels: int, value_channels: int, num_heads: int = 8,
                 max_span: int = MAX_SPAN, norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        if key_channels % num_heads or value_channels % num_heads:
            raise ValueError(f'key ({key_channels}) and value ({value_channels}) channels must be divisible '
                             f'by num_heads ({num_heads})')
        self.key_channels, self.value_channels, self.num_heads = key_channels, value_channels, num_heads
        self.qkv_transform = KMaXConvBN(in_channels, 2 * key_channels + value_channels, conv_type='1d',
                                        norm_cfg=None, conv_init=None)
        trunc_normal_tf_(self.qkv_transform.conv.weight, std=in_channels ** -0.5)
        self.query_rpe = KMaXRelativePositionalEncoding(key_channels // num_heads, max_span)
        self.key_rpe = KMaXRelativePositionalEncoding(key_channels // num_heads, max_span)
        self.value_rpe = KMaXRelativePositionalEncoding(value_channels // num_heads, max_span)
        self.batch_norm_qkv = build_kmax_norm(norm_cfg, 2 * key_channels + value_channels)
        self.batch_norm_similarity = build_kmax_norm(norm_cfg, 3 * num_heads)
        self.batch_norm_retrieved_output = build_kmax_norm(norm_cfg, 2 * value_channels)

    def forward(self, x: Tensor) -> Tensor:
        n, _, length = x.shape
        h = self.num_heads
        qkv = self.batch_norm_qkv(self.qkv_transform(x))
        q, k, v = torch.split(qkv, [self.key_channels, self.key_channels, self.value_channels], dim=1)
        q, k, v = q.reshape(n, h, -1, length), k.reshape(n, h, -1, length), v.reshape(n, h, -1, length)
        logits = torch.cat([
            torch.einsum('bhdl,bhdm->bhlm', q, k),
            torch.einsum('bhdl,lmd->bhlm', q, self.query_rpe(length)),
            torch.einsum('bhdm,lmd->bhlm', k, self.key_rpe(length)),
        ], dim=1)
        logits = self.batch_norm_similarity(logits).reshape(n, 3, h, length, length).sum(dim=1)
        weights = F.softmax(logits.float() if logits.dtype in LOW_PRECISION else logits, dim=-1).to(v.dtype)
        out = torch.cat([
            torch.einsum('bhlm,bhdm->bhdl', weights, v),
            torch.einsum('bhlm,lmd->bhdl', weights, self.value_rpe(length)),
        ], dim=1).reshape(n, 2 * self.value_channels, length)
        return self.batch_norm_retrieved_output(out).reshape(n, 2, self.value_channels, length).sum(dim=1)


class KMaXAxialAttention2D(nn.Module):
    """Height-axis then width-axis attention on ``[B, C, H, W]`` (output ``value_channels`` channels).

    Args:
        in_channels: input channels.
        filters: base width; key channels ``filters * key_expansion``, value ``filters * value_expansion``.
        key_expansion: defaults to 1.
        value_expansion: defaults to 2.
        num_heads: defaults to 8.
        max_span: see :class:`KMaXRelativePositionalEncoding`.
        norm_cfg: norm config.
    """

    def __init__(self, in_channels: int, filters: int, key_expansion: float = 1, value_expansion: float = 2,
                 num_heads: int = 8, max_span: int = MAX_SPAN, norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        key_channels = int(round(filters * key_expansion))
        self.value_channels = int(round(filters * value_expansion))
        self.height_axis = KMaXAxialAttention(in_channels, key_channels, self.value_channels, num_heads,
                                              max_span, norm_cfg)
        self.width_axis = KMaXAxialAttention(self.value_channels, key_channels, self.value_channels, num_heads,
                                             max_span, norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        cv = self.value_channels
        x = self.height_axis(x.permute(0, 3, 1, 2).reshape(b * w, c, h))            # [B*W, Cv, H]
        x = x.reshape(b, w, cv, h).permute(0, 3, 2, 1).reshape(b * h, cv, w)         # [B*H, Cv, W]
        x = self.width_axis(x)
        return x.reshape(b, h, cv, w).permute(0, 2, 1, 3).contiguous()
