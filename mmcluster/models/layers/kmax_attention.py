"""Multi-head attention with BatchNorm on the logits and on the output (kMaX-DeepLab query self-attention).

Official PyTorch code ``AttentionOperation`` (after deeplab2 ``dual_path_transformer.py``). With per-head
``q, k`` (``[B, h, d_k, L]``) and ``v`` (``[B, h, d_v, L]``)::

    S = BN_h(q^T k)             # [B, h, L, L]; no 1/sqrt(d): the BN over heads sets the scale
    A = softmax_keys(S)         # in float32 under AMP
    y = GELU(BN(concat_h(v A^T)))   # [B, h * d_v, L]
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kmax_conv_bn import KMAX_NORM_CFG, build_kmax_norm

__all__ = ['KMaXAttention', 'LOW_PRECISION']

LOW_PRECISION = (torch.float16, torch.bfloat16)


class KMaXAttention(nn.Module):
    """BN-normalised multi-head attention (see the module docstring).

    Args:
        value_channels: total value channels ``h * d_v``.
        num_heads: number of heads ``h``.
        norm_cfg: norm config. Defaults to BN(eps 1e-3, momentum 0.01).
    """

    def __init__(self, value_channels: int, num_heads: int, norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        self.batch_norm_similarity = build_kmax_norm(norm_cfg, num_heads)
        self.batch_norm_retrieved_value = build_kmax_norm(norm_cfg, value_channels)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        b, h, dv, length = value.shape
        logits = self.batch_norm_similarity(torch.einsum('bhdl,bhdm->bhlm', query, key))
        # Half-precision logits are promoted to float32 for the softmax; float64 stays float64.
        weights = F.softmax(logits.float() if logits.dtype in LOW_PRECISION else logits, dim=-1).to(value.dtype)
        out = torch.einsum('bhlm,bhdm->bhdl', weights, value).reshape(b, h * dv, length)
        return F.gelu(self.batch_norm_retrieved_value(out))
