"""Context Clusters (CoC) backbone for mmpretrain, mmdet and mmseg.

Paper: Xu Ma et al., "Image as Set of Points", ICLR 2023. Official code: ma-xu/Context-Cluster (the
state_dict names below follow its current HEAD naming so that converted checkpoints load strictly; see
``tools/model_converters/coc2mmcluster.py`` for generation-1 checkpoints).

Forward (paper Sec. 3.1 / 3.3):

1. Points: RGB plus two position channels ``p_r(i) = i/(H-1) - 0.5`` (varies along H) and
   ``p_c(j) = j/(W-1) - 0.5``, computed on the actual input size (a side of length 1 gets position 0).
2. Point reducer stem ``Conv2d(5, C0, 4, stride 4)`` (k = 16 nearest points fused by a linear map), then four
   stages of ClusterBlocks with ``Conv2d(C_i, C_{i+1}, 3, stride 2, pad 1)`` reducers in between
   (k = 9). Layout ``network = [stage0, reducer, stage1, reducer, stage2, reducer, stage3]``.
3. ClusterBlock (MetaFormer): ``x += DropPath(g1 * Cluster(GN(x)))``, ``x += DropPath(g2 * MLP(GN(x)))``,
   GN = GroupNorm(1, C), g = LayerScale (init 1e-5), MLP = Linear-GELU-Linear on channels-last.

Any input size: a side whose length is not a multiple of 4 is zero-padded (RGB) at the bottom / right to
the next multiple of 4 before the stem, with the position ramp continued on the padded rows / columns
(``i/(H-1) - 0.5`` for ``i >= H``), so no input pixel is dropped by the stride-4 stem. The stage maps are
therefore ``ceil(H/4), ceil(H/8), ceil(H/16), ceil(H/32)`` (the reducers with pad 1 give ``ceil(h/2)``).
For sizes divisible by 4 nothing is padded and the computation is the official one. Inside each stage the
token mixer handles maps that its fold does not divide with uneven regions (see
:mod:`mmcluster.models.layers.context_cluster`); at sizes divisible by 32 (e.g. 224) it is exactly the
official computation.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from mmcluster.models.layers.context_cluster import NORM_BY, ContextClusterLayer
from mmcluster.registry import MODELS, register_module

ARCH_KEYS = ('layers', 'embed_dims', 'mlp_ratios', 'heads', 'head_dim', 'proposal', 'fold')


class PointReducer(nn.Module):
    """Points reducer: fuses the k nearest points of evenly spread anchors (a strided conv, key ``proj``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ClusterMlp(nn.Module):
    """Linear(C, rC) - GELU - Linear(rC, C) on channels-last points (keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        return x.permute(0, 3, 1, 2)


class ClusterBlock(nn.Module):
    """MetaFormer block with the context-cluster token mixer (keys as in the official HEAD code)."""

    def __init__(self,
                 dim: int,
                 mlp_ratio: float,
                 heads: int,
                 head_dim: int,
                 proposal,
                 fold,
                 norm_by: str = 'sim',
                 drop: float = 0.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = ContextClusterLayer(
            dim, heads=heads, head_dim=head_dim, proposal=proposal, fold=fold, norm_by=norm_by)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ClusterMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        return x


@register_module(MODELS)
class ContextCluster(BaseModule):
    """Context Clusters backbone ("Image as Set of Points", ICLR 2023).

    Args:
        arch: one of :attr:`arch_settings` (``'tiny'``, ``'tiny2'``, ``'tiny_plain'``, ``'small'``,
            ``'medium'``) or a dict with keys ``layers``, ``embed_dims``, ``mlp_ratios``, ``heads``,
            ``head_dim``, ``proposal``, ``fold`` (each a 4-list, or a single value for all stages; an entry
            of ``proposal`` / ``fold`` is an int or an ``(h, w)`` pair).
        in_channels: image channels (position channels are added internally).
        out_indices: stages (0..3, negative allowed) whose outputs are returned, each through a
            GroupNorm(1, C) ``norm{2*i}`` (official naming ``norm0/norm2/norm4/norm6``). The default
            ``(3,)`` is the classification use: ``norm6`` then mmpretrain's GlobalAveragePooling and
            LinearClsHead reproduce the official GroupNorm - mean - Linear classifier.
        proposal: override of the centres per side for every stage (int) or per stage (4-list), e.g. the
            dense variants ``2`` (/4), ``5`` (/25), ``7`` (/49).
        fold: override of the regions per side (int or 4-list).
        norm_by: aggregation denominator of the token mixers, ``'sim'`` (paper Eq. 1, generation-2
            checkpoints) or ``'mask'`` (generation-1 checkpoints, all official COCO / ADE20K ones).
        mlp_drop: dropout in the MLPs.
        drop_path_rate: stochastic depth, linear in the global block index:
            ``rate * (j + sum(layers[:i])) / (sum(layers) - 1)`` for block j of stage i.
        layer_scale_init_value: LayerScale init.
        frozen_stages: stages ``0..frozen_stages`` (and the stem, the reducers before them and their output
            norms) are frozen and kept in eval mode; -1 freezes nothing.
        check_finite: if True, raise ValueError on non-finite input (costs one reduction over the input;
            off by default, NaN inputs then propagate to NaN outputs).
        init_cfg: mmengine init config; default trunc-normal (std 0.02, bias 0) on Linear layers as the
            official code, convolutions keep the PyTorch defaults.
    """

    arch_settings: Dict[str, dict] = {
        'tiny': dict(layers=[3, 4, 5, 2], embed_dims=[32, 64, 196, 320], mlp_ratios=[8, 8, 4, 4],
                     heads=[4, 4, 8, 8], head_dim=[24] * 4, proposal=[2, 2, 2, 2], fold=[8, 4, 2, 1]),
        'tiny2': dict(layers=[3, 4, 5, 2], embed_dims=[32, 64, 196, 320], mlp_ratios=[8, 8, 4, 4],
                      heads=[4, 4, 8, 8], head_dim=[24] * 4, proposal=[4, 2, 7, 4], fold=[7, 7, 1, 1]),
        'tiny_plain': dict(layers=[3, 4, 5, 2], embed_dims=[32, 64, 196, 320], mlp_ratios=[8, 8, 4, 4],
                           heads=[4, 4, 8, 8], head_dim=[24] * 4, proposal=[4, 4, 2, 2], fold=[1, 1, 1, 1]),
        'small': dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512], mlp_ratios=[8, 8, 4, 4],
                      heads=[4, 4, 8, 8], head_dim=[32] * 4, proposal=[2, 2, 2, 2], fold=[8, 4, 2, 1]),
        'medium': dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512], mlp_ratios=[8, 8, 4, 4],
                       heads=[6, 6, 12, 12], head_dim=[32] * 4, proposal=[2, 2, 2, 2], fold=[8, 4, 2, 1]),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (3, ),
                 proposal=None,
                 fold=None,
                 norm_by: str = 'sim',
                 mlp_drop: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-5,
                 frozen_stages: int = -1,
                 check_finite: bool = False,
                 init_cfg: Optional[Union[dict, list]] = dict(
                     type='TruncNormal', layer='Linear', std=.02, bias=0.)) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise KeyError(f'Unknown arch {arch!r}; valid: {list(self.arch_settings)} or a dict')
            arch = self.arch_settings[arch]
        elif isinstance(arch, dict):
            missing = [k for k in ARCH_KEYS if k not in arch]
            if missing:
                raise KeyError(f'Custom arch misses keys {missing}; needs {list(ARCH_KEYS)}')
        else:
            raise TypeError(f'arch must be a str or a dict, got {type(arch)}')
        if norm_by not in NORM_BY:
            raise ValueError(f'norm_by must be one of {NORM_BY}, got {norm_by!r}')
        cfg = {k: self._stages(arch[k], k) for k in ARCH_KEYS}
        if proposal is not None:
            cfg['proposal'] = self._stages(proposal, 'proposal')
        if fold is not None:
            cfg['fold'] = self._stages(fold, 'fold')
        self.arch = cfg
        self.in_channels = in_channels
        self.embed_dims = cfg['embed_dims']
        self.num_stages = 4
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        for i, idx in enumerate(out_indices):
            if not -4 <= idx < 4:
                raise ValueError(f'out_indices must be in [-4, 3] (stages), got {idx}')
            out_indices[i] = idx % 4
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.check_finite = check_finite

        dims = cfg['embed_dims']
        self.patch_embed = PointReducer(in_channels + 2, dims[0], 4, 4, 0)
        total = sum(cfg['layers'])
        network = []
        k = 0
        for i in range(4):
            blocks = []
            for _ in range(cfg['layers'][i]):
                dpr = drop_path_rate * k / (total - 1) if total > 1 else 0.
                blocks.append(
                    ClusterBlock(dims[i], cfg['mlp_ratios'][i], cfg['heads'][i], cfg['head_dim'][i],
                                 cfg['proposal'][i], cfg['fold'][i], norm_by, mlp_drop, dpr,
                                 layer_scale_init_value))
                k += 1
            network.append(nn.Sequential(*blocks))
            if i < 3:
                network.append(PointReducer(dims[i], dims[i + 1], 3, 2, 1))
        self.network = nn.ModuleList(network)
        for i in self.out_indices:
            self.add_module(f'norm{2 * i}', nn.GroupNorm(1, dims[i]))
        self._freeze_stages()

    @staticmethod
    def _stages(value, name):
        if isinstance(value, (int, float)):
            return [value] * 4
        value = list(value)
        if len(value) != 4:
            raise ValueError(f'{name} must be a single value or have 4 entries (one per stage), got {value!r}')
        return value

    @staticmethod
    def position_channels(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``[B, 2, Hx, Wx]`` positions ``i/(height-1) - 0.5`` / ``j/(width-1) - 0.5`` on the grid of ``x``.

        ``height`` / ``width`` are the real input size; rows / columns beyond them (padding) continue the ramp.
        A side of length 1 gets position 0.
        """
        B, _, hx, wx = x.shape

        def ramp(n, real):
            i = torch.arange(n, device=x.device, dtype=torch.float32)
            return i / (real - 1) - 0.5 if real > 1 else i

        pr = ramp(hx, height)[:, None].expand(hx, wx)
        pc = ramp(wx, width)[None, :].expand(hx, wx)
        return torch.stack([pr, pc]).to(x.dtype)[None].expand(B, 2, hx, wx)

    def forward(self, x: torch.Tensor):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'ContextCluster expects [B, {self.in_channels}, H, W] input, got shape '
                             f'{tuple(x.shape)}')
        if self.check_finite and not torch.isfinite(x).all():
            raise ValueError('ContextCluster input contains NaN or Inf')
        H, W = x.shape[-2:]
        ph, pw = (-H) % 4, (-W) % 4
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        x = torch.cat([x, self.position_channels(x, H, W)], dim=1)
        x = self.patch_embed(x)
        outs = []
        for i in range(4):
            if i > 0:
                x = self.network[2 * i - 1](x)
            x = self.network[2 * i](x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{2 * i}')(x))
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.patch_embed]
        for i in range(min(self.frozen_stages, 3) + 1):
            if i > 0:
                modules.append(self.network[2 * i - 1])
            modules.append(self.network[2 * i])
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{2 * i}'))
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self
