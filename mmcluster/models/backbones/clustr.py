"""ClusTR backbone (Xie et al., "ClusTR: Exploring Efficient Self-Attention via Clustering for Vision
Transformers", arXiv 2208.13138; ``docs/clustr.md``). No official code exists; this follows the paper (Eqs. 1-9,
Table A1) with the layout that reproduces the published parameter counts (derivation in ``docs/clustr.md``):

* four stages; stage ``i`` starts with an overlapped patch embedding (``Conv2d`` 7x7 stride 4 padding 3 for the
  first stage, 3x3 stride 2 padding 1 after) followed by LayerNorm (paper: "we follow Shunted Transformer and
  employ the overlapped patch embedding"); stage maps ``ceil(H/4), ceil(H/8), ceil(H/16), ceil(H/32)``, so any
  input size works (no padding, no divisibility constraint);
* blocks (Eq. 9): ``z' = z + DropPath(MHMS-ClusAtt(LN(z)))``, ``z = z' + DropPath(FFN(LN(z')))`` with the
  PVTv2 FFN ``fc1 (C -> rC)``, depthwise 3x3 conv on the hidden map, GELU, ``fc2 (rC -> C)``, ``r = 8, 8, 4, 4``;
  the attention is :class:`~mmcluster.models.layers.ClusteringAttention` (per-scale full-width K/V);
* a LayerNorm at the end of every stage; outputs are the stage maps ``[B, C_i, h_i, w_i]`` of ``out_indices``.

Variants (Table A1): L / C / H / lambda per stage

========  =====================  =====================  =====================  ===============
arch      stage 1                stage 2                stage 3                stage 4
========  =====================  =====================  =====================  ===============
tiny      1 / 64 / 1 / {64,16}   2 / 128 / 2 / {16,4}   6 / 256 / 4 / {4,1}    1 / 512 / 8 / 1
small     3 / 64 / 1 / {64,16}   5 / 128 / 2 / {16,4}   13 / 256 / 4 / {4,1}   2 / 512 / 8 / 1
base      3 / 64 / 1 / {64,16}   5 / 128 / 2 / {16,4}   18 / 320 / 5 / {4,1}   3 / 512 / 8 / 1
========  =====================  =====================  =====================  ===============

With a 1000-class linear head: 11.68M / 22.69M / 40.25M parameters (published 11.7M / 22.7M / 40.2M, 40.3M in
the abstract; the single-scale ablation model of Table 7, 10.8M, is ``arch=dict(..., ratios=[[64], [16], [4],
[1]])``).

Choices not stated in the paper (``docs/clustr.md``): MLP ratios (PVTv2), ``k = 5``, the per-token weight
predictor ``exp(Linear(LN(z)))`` and distances scaled by ``1/sqrt(C)`` (TCFormer), full-width K/V per scale.
Deviations from the paper's text, with their switches: nearest-centre assignment (``assign='parent'`` is the
paper's nearest denser token), one clustering shared by all heads (``cluster_per_head=True`` clusters each
head's keys), a normalised (softmax) merge (no switch, see the attention module), distances scaled by
``1/sqrt(C)`` (``dist_scale=False`` is Eq. 1).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmengine.model.weight_init import constant_init, normal_init, trunc_normal_init

from mmcluster.models.backbones.base import BaseBackbone, resolve_arch
from mmcluster.models.layers.clustering_attention import ClusteringAttention
from mmcluster.registry import MODELS, register_module

_TINY_SMALL_DIMS = dict(embed_dims=[64, 128, 256, 512], num_heads=[1, 2, 4, 8])
_RATIOS = [[64, 16], [16, 4], [4, 1], [1]]
_MLP = [8, 8, 4, 4]

ARCH_SETTINGS = {
    'tiny': dict(depths=[1, 2, 6, 1], ratios=_RATIOS, mlp_ratios=_MLP, **_TINY_SMALL_DIMS),
    'small': dict(depths=[3, 5, 13, 2], ratios=_RATIOS, mlp_ratios=_MLP, **_TINY_SMALL_DIMS),
    'base': dict(depths=[3, 5, 18, 3], embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], ratios=_RATIOS,
                 mlp_ratios=_MLP),
}
ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base'}
_REQUIRED_KEYS = ('depths', 'embed_dims', 'num_heads', 'ratios')


class OverlapPatchEmbed(nn.Module):
    """``Conv2d(k, stride s, padding k // 2)`` + LayerNorm; returns tokens ``[B, h*w, C]`` and ``(h, w)``."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size, stride, kernel_size // 2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class ClusTRMlp(nn.Module):
    """PVTv2 FFN: ``fc1`` -> depthwise 3x3 conv on the hidden map -> GELU -> ``fc2``."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.dwconv = nn.Conv2d(hidden_dims, hidden_dims, 3, 1, 1, groups=hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        B, N, _ = x.shape
        x = self.fc1(x)
        # the hidden tokens viewed as a channels-last map: the depthwise conv takes it as it is (oneDNN's
        # channels-last kernel, ~10x faster than the NCHW one here) and returns channels-last, viewed back as
        # tokens; no copy on either side
        x = self.dwconv(x.view(B, hw[0], hw[1], -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(B, N, -1)
        x = self.drop(self.act(x))
        return self.drop(self.fc2(x))


class ClusTRBlock(nn.Module):
    """Paper Eq. 9 with stochastic depth; ``attn_cfg``: further arguments of :class:`ClusteringAttention`."""

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 ratios: Sequence[float],
                 mlp_ratio: float,
                 drop: float = 0.,
                 drop_path: float = 0.,
                 attn_cfg: Optional[Dict] = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = ClusteringAttention(embed_dims, num_heads, ratios, proj_drop=drop, **(attn_cfg or {}))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = ClusTRMlp(embed_dims, int(embed_dims * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


def _resolve_arch(arch: Union[str, Dict]) -> Dict:
    arch = resolve_arch(arch, ARCH_SETTINGS, _REQUIRED_KEYS, 'ClusTR', ARCH_ALIASES)
    num_stages = len(arch['depths'])
    arch.setdefault('mlp_ratios', (_MLP + [4] * num_stages)[:num_stages])
    for key in ('embed_dims', 'num_heads', 'ratios', 'mlp_ratios'):
        if len(arch[key]) != num_stages:
            raise ValueError(f'ClusTR arch: {key} has {len(arch[key])} entries but depths has {num_stages}')
    if num_stages < 1:
        raise ValueError('ClusTR arch needs at least one stage')
    unknown = set(arch) - set(_REQUIRED_KEYS) - {'mlp_ratios'}
    if unknown:
        raise ValueError(f'ClusTR arch has unknown keys {sorted(unknown)}')
    return arch


@register_module(MODELS)
class ClusTR(BaseBackbone):
    """ClusTR backbone (see the module docstring and ``docs/clustr.md``).

    Deviations from the paper, each with its switch: tokens join the nearest cluster centre as in TCFormer's
    DPC-kNN (``assign='parent'``: the nearest denser token, the paper's text); one clustering per layer shared
    by all heads (``cluster_per_head=True``: Eq. 6's per-head ``Cluster(X W_i^K)``); distances scaled by
    ``1/sqrt(C)`` (``dist_scale=False``: Eq. 1); the cluster merge is normalised (a softmax over each cluster's
    scores; no switch, Eq. 3 leaves ``w_i`` undefined). No official code or weights exist.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``), or a dict with ``depths``,
            ``embed_dims``, ``num_heads``, ``ratios`` (per stage a list of reduction ratios) and optionally
            ``mlp_ratios`` (default ``[8, 8, 4, 4]``).
        in_channels: input channels.
        out_indices: stages whose (normalised) maps are returned; negative indices count from the end.
        multiscale: ``'sum'`` (paper Eq. 8) or ``'concat'`` (Eq. 7).
        k: DPC-kNN neighbours.
        dist_scale: DPC-kNN distances divided by ``sqrt(C)`` (TCFormer) or not (paper Eq. 1).
        chunk_size: DPC-kNN rows per distance block (None: automatic, ~16 MiB blocks).
        assign: ``'center'`` (nearest centre, TCFormer's code) or ``'parent'`` (nearest denser token, the
            paper's text).
        cluster_per_head: cluster each head's keys (paper Eq. 6 read literally) instead of the block input once
            for all heads.
        qkv_bias: bias of the query / key-value projections.
        drop_rate: dropout after the attention projection and in the FFN.
        attn_drop_rate: attention-weight dropout.
        drop_path_rate: stochastic depth, increasing linearly over all blocks to this value.
        frozen_stages: stages ``0..frozen_stages`` (patch embedding, blocks and output norm of each) are frozen:
            ``requires_grad=False`` and kept in eval mode, re-applied by ``train()``; -1 freezes nothing.
        norm_eval: keep the normalisation layers in eval mode during training (mmdet's convention; ClusTR has
            only LayerNorms, which behave the same in both modes, so this changes nothing but ``.training``).
        init_cfg: mmengine init config (e.g. ``dict(type='Pretrained', checkpoint=...)``, how converted weights
            are loaded); None (default): truncated normal (std 0.02) Linear, unit LayerNorm, fan-out normal
            Conv2d (PVTv2's initialisation).

    Cluster records: every clustered scale of every block records its assignment through
    :class:`~mmcluster.models.layers.ClusteringAttention` (token grid = the stage map ``(h_i, w_i)``).
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 multiscale: str = 'sum',
                 k: int = 5,
                 dist_scale: bool = True,
                 chunk_size: Optional[int] = None,
                 assign: str = 'center',
                 cluster_per_head: bool = False,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        arch_settings = _resolve_arch(arch)
        depths = list(arch_settings['depths'])
        super().__init__(len(depths), out_indices, frozen_stages, norm_eval, init_cfg)
        self.arch_settings = arch_settings
        self.in_channels = in_channels
        dims = list(self.arch_settings['embed_dims'])
        heads = list(self.arch_settings['num_heads'])
        self.embed_dims = dims
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        attn_cfg = dict(multiscale=multiscale, k=k, dist_scale=dist_scale, chunk_size=chunk_size, assign=assign,
                        cluster_per_head=cluster_per_head, qkv_bias=qkv_bias, attn_drop=attn_drop_rate)
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        cur = 0
        for i in range(self.num_stages):
            self.patch_embeds.append(
                OverlapPatchEmbed(in_channels if i == 0 else dims[i - 1], dims[i], 7 if i == 0 else 3,
                                  4 if i == 0 else 2))
            self.stages.append(
                nn.ModuleList(
                    ClusTRBlock(dims[i], heads[i], self.arch_settings['ratios'][i],
                                self.arch_settings['mlp_ratios'][i], drop=drop_rate, drop_path=dpr[cur + j],
                                attn_cfg=attn_cfg)
                    for j in range(depths[i])))
            self.norms.append(nn.LayerNorm(dims[i]))
            cur += depths[i]
        self._freeze_stages()

    def stage_modules(self, i: int) -> List[nn.Module]:
        return [self.patch_embeds[i], self.stages[i], self.norms[i]]

    def init_weights(self) -> None:
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                normal_init(m, mean=0, std=(2.0 / fan_out)**0.5, bias=0)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f'ClusTR expects images [B, {self.in_channels}, H, W] (in_channels='
                             f'{self.in_channels}), got {got}')
        outs = []
        for i in range(self.num_stages):
            tokens, hw = self.patch_embeds[i](x)
            for block in self.stages[i]:
                tokens = block(tokens, hw)
            tokens = self.norms[i](tokens)
            # a channels-last view, which the next patch embedding's convolution takes without a copy (and
            # whose output is then channels-last, i.e. contiguous tokens); outputs are contiguous NCHW maps
            x = tokens.view(tokens.shape[0], hw[0], hw[1], -1).permute(0, 3, 1, 2)
            if i in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)
