"""Context Clusters (CoC) backbone for mmpretrain, mmdet and mmseg.

Paper: Xu Ma et al., "Image as Set of Points", ICLR 2023 (Sec. 3.1, 3.3 and Appendix A, Table 6). Official
code: github.com/ma-xu/Context-Cluster; the state_dict names below follow its current naming so that
converted checkpoints load strictly (``tools/model_converters/coc2mmcluster.py``; key layouts of both
release generations in ``docs/context_cluster.md``).

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
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.logging import print_log
from mmengine.model.weight_init import trunc_normal_init

from mmcluster.models.backbones.base import BaseBackbone, per_stage, resolve_arch
from mmcluster.models.layers.context_cluster import NORM_BY, ContextClusterLayer
from mmcluster.models.utils.eager import running_eagerly
from mmcluster.registry import MODELS, register_module

ARCH_KEYS = ('layers', 'embed_dims', 'mlp_ratios', 'heads', 'head_dim', 'proposal', 'fold')

# oneDNN's fused linear + post-op (a private op of PyTorch's CPU build, used by its inductor); absent -> eager
_HAS_FUSED_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')


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
        return self.forward_tokens(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last input ``[..., C]`` -> ``[..., C]``."""
        if self._fused_fc1_gelu(x):
            # oneDNN's linear with bias and exact (erf) GELU as post-ops: one pass over the hidden activations
            # instead of three (bias copy, GEMM, GELU); the same values (PyTorch's inductor uses this op)
            h = torch.ops.mkldnn._linear_pointwise(x, self.fc1.weight, self.fc1.bias, 'gelu', [], 'none')
        else:
            h = self.act(self.fc1(x))
        return self.drop(self.fc2(self.drop(h)))

    def _fused_fc1_gelu(self, x: torch.Tensor) -> bool:
        """Whether the fused oneDNN op may replace ``act(fc1(x))``: inference on a CPU in float32 (the op has
        no backward and no autocast), eager mode (not while tracing, exporting or compiling), exact GELU."""
        return (not torch.is_grad_enabled() and x.device.type == 'cpu' and x.dtype == torch.float32
                and self.fc1.bias is not None and isinstance(self.act, nn.GELU) and self.act.approximate == 'none'
                and _HAS_FUSED_LINEAR and not torch.is_autocast_enabled('cpu') and running_eagerly())


def group_norm_tokens(norm: nn.GroupNorm, tokens: torch.Tensor) -> torch.Tensor:
    """``GroupNorm(1, C)`` of channels-last points ``[B, N, C]`` in any point order, without a copy.

    The points are viewed as a channels-last ``[B, C, N, 1]`` map, for which PyTorch's group norm has a native
    channels-last kernel (forward and backward); one group normalises over all points and channels, so the
    order of the points does not matter.
    """
    B, N, C = tokens.shape
    out = norm(tokens.view(B, N, 1, C).permute(0, 3, 1, 2))
    return out.permute(0, 2, 3, 1).reshape(B, N, C)


class ClusterBlock(nn.Module):
    """MetaFormer block around a clustering token mixer (keys as in the official HEAD code): CoC's
    :class:`ContextClusterLayer`, ClusterFormer's ``ClusterFormerMixer``."""

    def __init__(self,
                 dim: int,
                 mlp_ratio: float,
                 token_mixer: nn.Module,
                 drop: float = 0.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = token_mixer
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ClusterMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        return x

    def forward_tokens(self, x: torch.Tensor, hw: Tuple[int, int], region_order: bool) -> torch.Tensor:
        """The same block on channels-last points ``[B, N, C]`` (token mixers with ``forward_tokens`` only):
        no layout change between the norms, the mixer's projections and the MLP (see
        :meth:`ContextCluster.forward`)."""
        y = self.token_mixer.forward_tokens(group_norm_tokens(self.norm1, x), hw, region_order)
        x = self._residual(x, self.layer_scale_1, y)
        return self._residual(x, self.layer_scale_2, self.mlp.forward_tokens(group_norm_tokens(self.norm2, x)))

    def _residual(self, x: torch.Tensor, scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + DropPath(scale * y)``; one fused ``addcmul`` when no path is dropped (eval, or rate 0)."""
        if isinstance(self.drop_path, nn.Identity) or not self.training:
            return torch.addcmul(x, scale, y)
        return x + self.drop_path(scale * y)


class PointStageBackbone(BaseBackbone):
    """Context Clusters' layout, shared with ClusterFormer: the image plus two position channels (zero padded to
    a multiple of 4) -> point reducer ``Conv 4x4 / 4`` ``patch_embed`` -> four stages of blocks with ``Conv 3x3
    / 2`` reducers in between (``network = [stage0, reducer, stage1, ..., stage3]``) -> ``GroupNorm(1, C)``
    ``norm{2i}`` on each returned stage. Stage ``i`` (for ``frozen_stages``) is its reducer, its blocks and its
    output norm; stage 0 has the stem instead of a reducer.
    """

    def _build_network(self, dims: Sequence[int], layers: Sequence[int], drop_path_rate: float,
                       make_block: Callable[[int, float], nn.Module]) -> None:
        """``make_block(stage, drop_path)`` builds one block; drop path is linear in the global block index."""
        self.patch_embed = PointReducer(self.in_channels + 2, dims[0], 4, 4, 0)
        total = sum(layers)
        network = []
        k = 0
        for i in range(4):
            blocks = []
            for _ in range(layers[i]):
                blocks.append(make_block(i, drop_path_rate * k / (total - 1) if total > 1 else 0.))
                k += 1
            network.append(nn.Sequential(*blocks))
            if i < 3:
                network.append(PointReducer(dims[i], dims[i + 1], 3, 2, 1))
        self.network = nn.ModuleList(network)
        for i in self.out_indices:
            self.add_module(f'norm{2 * i}', nn.GroupNorm(1, dims[i]))

    def stage_modules(self, i: int) -> List[nn.Module]:
        modules = [self.network[2 * i - 1] if i > 0 else self.patch_embed, self.network[2 * i]]
        if i in self.out_indices:
            modules.append(getattr(self, f'norm{2 * i}'))
        return modules

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
            raise ValueError(f'{type(self).__name__} expects [B, {self.in_channels}, H, W] input, got shape '
                             f'{tuple(x.shape)}')
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
            x = self.stage(i, x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{2 * i}')(x).contiguous())
        return tuple(outs)

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The blocks of stage ``i`` on the map ``x [B, C, H, W]``."""
        return self.network[2 * i](x)


@register_module(MODELS)
class ContextCluster(PointStageBackbone):
    """Context Clusters backbone ("Image as Set of Points", ICLR 2023).

    Deviations from the official ``ContextCluster`` (each in ``docs/context_cluster.md`` with its switch):

    * Token mixer aggregation ``norm_by``: the paper's Eq. 1 (``'sim'``) or the earlier official code
      (``'mask'``), taken from a converted checkpoint's ``meta`` when ``norm_by=None`` (see ``init_weights``).
    * Any input size: inputs not divisible by 4 are zero-padded before the stem (position ramp continued),
      regions of stages whose size the fold does not divide are uneven (official: AssertionError). Sizes
      divisible by 32 give the official computation; pad in the data preprocessor (``pad_size_divisor=32``)
      to reproduce the published dense results exactly.
    * Output norms exist only for ``out_indices`` (official: all four with ``fork_feat``, ``norm`` for the
      classifier, which the converter renames to ``norm6``); the classifier head is mmpretrain's
      ``GlobalAveragePooling`` + ``LinearClsHead`` (same function as the official GroupNorm - mean - Linear).
    * No ``FORK_LAST3`` environment switch: choose ``out_indices`` instead.

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
        norm_by: aggregation denominator of the token mixers, ``'sim'`` (paper Eq. 1; checkpoints trained
            with the official code since 2023-05-31) or ``'mask'`` (earlier official code and its checkpoints,
            e.g. all released COCO / ADE20K ones). ``None`` (default): ``'sim'``, unless the checkpoint of a
            ``Pretrained`` ``init_cfg`` records another choice in its ``meta['norm_by']`` (the converter writes
            it); an explicit value that contradicts the checkpoint's record raises ``ValueError``.
        mlp_drop: dropout in the MLPs.
        drop_path_rate: stochastic depth, linear in the global block index:
            ``rate * (j + sum(layers[:i])) / (sum(layers) - 1)`` for block j of stage i.
        layer_scale_init_value: LayerScale init.
        frozen_stages: the stem and stages ``0..frozen_stages`` (with the reducers before them and their output
            norms) are frozen: ``requires_grad=False`` and eval mode, re-applied by ``train()``; -1 freezes nothing.
        norm_eval: keep every norm layer in eval mode during training. All norms of CoC are GroupNorm, which
            has no running statistics, so this changes nothing numerically; it exists for the interface that
            every mmcluster backbone shares.
        init_cfg: ``None`` (default): the official initialisation, truncated normal (std 0.02, bias 0) on
            Linear layers, PyTorch defaults for convolutions. ``dict(type='Pretrained', checkpoint=PATH,
            prefix=None)``: a converted checkpoint (``tools/model_converters/coc2mmcluster.py``), read without
            running pickled code, its ``meta['norm_by']`` applied, and loaded strictly except for output norms
            the checkpoint lacks or the model does not have (listed in the log). Other init configs are
            passed to mmengine.
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
                 norm_by: Optional[str] = None,
                 mlp_drop: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-5,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(4, out_indices, frozen_stages, norm_eval, init_cfg)
        arch = resolve_arch(arch, self.arch_settings, ARCH_KEYS, 'ContextCluster')
        if norm_by is not None and norm_by not in NORM_BY:
            raise ValueError(f'norm_by must be one of {NORM_BY} or None (from the checkpoint), got {norm_by!r}')
        cfg = {k: per_stage(arch[k], k) for k in ARCH_KEYS}
        if proposal is not None:
            cfg['proposal'] = per_stage(proposal, 'proposal')
        if fold is not None:
            cfg['fold'] = per_stage(fold, 'fold')
        self.arch = cfg
        self.in_channels = in_channels
        self.embed_dims = cfg['embed_dims']
        self.requested_norm_by = norm_by
        self.norm_by = norm_by or 'sim'

        self._build_network(
            cfg['embed_dims'], cfg['layers'], drop_path_rate,
            lambda i, dpr: ClusterBlock(
                cfg['embed_dims'][i], cfg['mlp_ratios'][i],
                ContextClusterLayer(cfg['embed_dims'][i], heads=cfg['heads'][i], head_dim=cfg['head_dim'][i],
                                    proposal=cfg['proposal'][i], fold=cfg['fold'][i], norm_by=self.norm_by),
                mlp_drop, dpr, layer_scale_init_value))
        self._freeze_stages()

    # ------------------------------------------------------------------ aggregation choice
    def set_norm_by(self, norm_by: str) -> None:
        """Set the aggregation denominator of every token mixer (``'sim'`` or ``'mask'``)."""
        if norm_by not in NORM_BY:
            raise ValueError(f'norm_by must be one of {NORM_BY}, got {norm_by!r}')
        self.norm_by = norm_by
        for m in self.modules():
            if isinstance(m, ContextClusterLayer):
                m.norm_by = norm_by

    def apply_checkpoint_meta(self, meta: Optional[dict], source: str = 'checkpoint') -> None:
        """Take ``meta['norm_by']`` of a converted checkpoint (a conflicting explicit ``norm_by`` raises)."""
        recorded = (meta or {}).get('norm_by')
        if recorded is None:
            return
        if recorded not in NORM_BY:
            raise ValueError(f'{source}: meta norm_by={recorded!r} is not one of {NORM_BY}')
        if self.requested_norm_by is not None and self.requested_norm_by != recorded:
            raise ValueError(
                f'ContextCluster(norm_by={self.requested_norm_by!r}) contradicts {source}, whose meta records '
                f'norm_by={recorded!r} (the aggregation it was trained with); set norm_by=None to follow the '
                'checkpoint, or re-convert it with the intended --norm-by')
        self.set_norm_by(recorded)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        cfg = self.init_cfg
        if cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_init(m, std=.02, bias=0.)
            return
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'),
                                 map_location=cfg.get('map_location', 'cpu'))
            self._is_init = True
            return
        super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None, map_location='cpu') -> None:
        """Load a converted checkpoint (see ``init_cfg``); local files never run pickled code."""
        from mmcluster.utils.checkpoint import (check_state_dict, load_checkpoint_safely, pick_state_dict,
                                                strip_prefix)
        if osp.isfile(checkpoint):
            ckpt = load_checkpoint_safely(checkpoint, map_location=map_location)
        else:  # URLs and other mmengine backends (torch.load with weights_only)
            from mmengine.runner import CheckpointLoader
            ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
        self.apply_checkpoint_meta(ckpt.get('meta') if isinstance(ckpt, dict) else None, checkpoint)
        state_dict = pick_state_dict(ckpt)
        if prefix:
            state_dict, _ = strip_prefix(state_dict, prefix if prefix.endswith('.') else prefix + '.')
        report = check_state_dict(state_dict, self)

        def output_norm(key):
            return key.split('.', 1)[0] in ('norm0', 'norm2', 'norm4', 'norm6')

        other = ([k for k in report.missing + report.unexpected if not output_norm(k)] + report.mismatched)
        if other:
            raise ValueError(f'{checkpoint} does not match ContextCluster({self.arch}):\n{report}')
        for k in report.unexpected:
            state_dict.pop(k)
        self.load_state_dict(state_dict, strict=not report.missing)
        skipped = sorted({k.split('.')[0] for k in report.missing + report.unexpected})
        print_log(f'ContextCluster: loaded {checkpoint} (norm_by={self.norm_by!r})' +
                  (f'; output norms not in both: {skipped}' if skipped else ''), logger='current')

    # ------------------------------------------------------------------ forward
    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i``'s blocks on channels-last points; ``x [B, C, H, W]`` in and out (the output is a
        channels-last view, which the reducer's convolution and the output norm take as they are).

        Every linear map of a block (the mixer's ``f``, ``v``, ``proj``, the MLP) acts on channels, so a stage
        keeps its points as ``[B, N, C]`` from the reducer's output to the stage's end, and when the stage's
        regions are equal (any size divisible by the fold) in the mixer's region order: one gather and one
        scatter per stage instead of per block, and no NCHW <-> channels-last copies around the MLP. Uneven
        regions have invalid slots, whose padding would enter the group norms; those stages keep the map
        order (the mixer gathers and scatters per block).
        """
        blocks = self.network[2 * i]
        if len(blocks) == 0:
            return x
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        gather, scatter, valid, _, (fh, fw), L = blocks[0].token_mixer.region_layout((H, W), x.device)
        region_order = valid is None and not (fh * fw == 1 and L == H * W)
        tokens = tokens[:, gather] if region_order else tokens.contiguous()
        for block in blocks:
            tokens = block.forward_tokens(tokens, (H, W), region_order)
        if region_order:
            tokens = tokens[:, scatter]
        return tokens.transpose(1, 2).reshape(B, C, H, W)
