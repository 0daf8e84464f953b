"""Convolution + BatchNorm + activation, the building unit of every kMaX-DeepLab module.

Paper: Qihang Yu et al., "k-means Mask Transformer" (kMaX-DeepLab, ECCV 2022), and its official
PyTorch re-implementation (bytedance/kmax-deeplab, ``ConvBN`` / ``get_norm``), see ``docs/kmax_deeplab.md``.

``y = act(norm(conv(x)))`` with a 1-D (queries ``[B, C, L]``) or 2-D (pixels ``[B, C, H, W]``) convolution.
Normalisation follows the official code: BatchNorm with ``eps=1e-3`` and ``momentum=0.01`` (TF's decay
0.99), SyncBN in the full configs. Initialisations are the official ones (TF semantics):
``'he_normal'`` = truncated normal (cut at 2 std) with ``std = sqrt(2 / in_channels)``, ``'xavier_uniform'``,
``'trunc_normal'`` (std 0.02), ``'normal'`` (std 0.02); biases zero; the norm weight starts at
``norm_init`` (0 for the last BN of every residual branch, so each block starts as the identity).
"""
import math
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ['KMAX_NORM_CFG', 'build_kmax_norm', 'trunc_normal_tf_', 'KMaXConvBN']

KMAX_NORM_CFG = dict(type='BN', eps=1e-3, momentum=0.01)
NORM_TYPES = ('BN', 'SyncBN')
ACT_TYPES = (None, 'gelu', 'relu')
CONV_INITS = ('he_normal', 'xavier_uniform', 'trunc_normal', 'normal', None)


class _AnyDimBN(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over dim 1 of an input of any rank (the official SyncBN is rank agnostic too)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f'expected an input of rank >= 2, got {input.dim()}')


def build_kmax_norm(norm_cfg: Optional[dict], channels: int) -> nn.Module:
    """A BatchNorm over dim 1 for inputs of any rank (``[B, C, L]``, ``[B, C, H, W]``, ``[B, 1, L, H, W]``).

    Args:
        norm_cfg: ``dict(type='BN' | 'SyncBN', eps=..., momentum=...)``; ``None`` gives an identity.
            Missing ``eps`` / ``momentum`` default to the official 1e-3 / 0.01.
        channels: number of channels.
    """
    if norm_cfg is None:
        return nn.Identity()
    cfg = dict(KMAX_NORM_CFG, **norm_cfg)
    norm_type = cfg.pop('type')
    if norm_type not in NORM_TYPES:
        raise ValueError(f'norm type must be one of {NORM_TYPES}, got {norm_type!r}')
    eps, momentum = cfg.pop('eps'), cfg.pop('momentum')
    requires_grad = cfg.pop('requires_grad', True)
    if cfg:
        raise ValueError(f'unknown norm_cfg keys {sorted(cfg)}; valid: type, eps, momentum, requires_grad')
    if norm_type == 'SyncBN':
        layer = nn.SyncBatchNorm(channels, eps=eps, momentum=momentum)
    else:
        layer = _AnyDimBN(channels, eps=eps, momentum=momentum)
    for p in layer.parameters():
        p.requires_grad = requires_grad
    return layer


@torch.no_grad()
def trunc_normal_tf_(tensor: Tensor, std: float = 1.0) -> Tensor:
    """TF's truncated normal: a standard normal cut at +-2, then scaled by ``std``."""
    nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0)
    return tensor.mul_(std)


class KMaXConvBN(nn.Module):
    """``act(norm(conv(x)))`` with the official kMaX initialisation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution kernel size. Defaults to 1.
        conv_type: ``'2d'`` (pixels) or ``'1d'`` (queries). Defaults to ``'2d'``.
        norm_cfg: see :func:`build_kmax_norm`; ``None`` for no norm. Defaults to BN(eps 1e-3, momentum 0.01).
        act: ``None``, ``'gelu'`` or ``'relu'``. Defaults to None.
        bias: whether the convolution has a bias. Defaults to False.
        conv_init: one of ``'he_normal'`` (default), ``'xavier_uniform'``, ``'trunc_normal'``, ``'normal'``,
            ``None`` (PyTorch's default).
        norm_init: initial norm weight. Defaults to 1.0.
        **conv_kwargs: ``stride``, ``padding``, ``dilation``, ``groups`` of the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, conv_type: str = '2d',
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG, act: Optional[str] = None, bias: bool = False,
                 conv_init: Optional[str] = 'he_normal', norm_init: float = 1.0, **conv_kwargs) -> None:
        super().__init__()
        if conv_type not in ('1d', '2d'):
            raise ValueError(f"conv_type must be one of ('1d', '2d'), got {conv_type!r}")
        if act not in ACT_TYPES:
            raise ValueError(f'act must be one of {ACT_TYPES}, got {act!r}')
        if conv_init not in CONV_INITS:
            raise ValueError(f'conv_init must be one of {CONV_INITS}, got {conv_init!r}')
        conv_cls = nn.Conv1d if conv_type == '1d' else nn.Conv2d
        self.conv = conv_cls(in_channels, out_channels, kernel_size, bias=bias, **conv_kwargs)
        self.norm = build_kmax_norm(norm_cfg, out_channels)
        self.act = {None: nn.Identity, 'gelu': nn.GELU, 'relu': nn.ReLU}[act]()
        if conv_init == 'he_normal':
            trunc_normal_tf_(self.conv.weight, std=math.sqrt(2.0 / in_channels))
        elif conv_init == 'xavier_uniform':
            nn.init.xavier_uniform_(self.conv.weight)
        elif conv_init == 'trunc_normal':
            trunc_normal_tf_(self.conv.weight, std=0.02)
        elif conv_init == 'normal':
            nn.init.normal_(self.conv.weight, std=0.02)
        if bias:
            nn.init.zeros_(self.conv.bias)
        if norm_cfg is not None:
            nn.init.constant_(self.norm.weight, norm_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))
