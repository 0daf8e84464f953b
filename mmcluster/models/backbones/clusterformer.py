"""ClusterFormer backbone for mmpretrain, mmdet and mmseg.

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023.
Released code (classification only): ClusterFormer/ClusterFormer, ``mmcls/models/backbones/cluster.py``; the
parameter names and the variant table below follow its pure-PyTorch commit 0c384d2 (the next commit needs
``flash_attn`` and CUDA). See ``docs/clusterformer.md`` for the equations, deviations and switches.

Layout (as the released code and Context Clusters): RGB + two position channels ``i/(H-1) - 0.5``,
``j/(W-1) - 0.5`` -> point reducer ``Conv 4x4 / 4`` -> four stages of blocks with ``Conv 3x3 / 2, pad 1``
reducers in between (``network = [stage0, reducer, stage1, reducer, stage2, reducer, stage3]``); each stage
output through ``GroupNorm(1, C)`` ``norm{2i}``. Block (MetaFormer)::

    x = x + DropPath(g1 * Mixer(GN(x)))       # Mixer: ClusterFormerMixer (recurrent clustering + dispatch)
    x = x + DropPath(g2 * MLP(GN(x)))         # MLP: Linear - GELU - Linear (released: 1x1 convs)

With ``dispatch='soft'`` (paper Eq. 6, the default) the block supplies Eq. 6's residual (first line) and its
MLP (second line): the mixer computes the similarity-weighted mean of the centres only.

Any input size: sides not divisible by 4 are zero padded at the bottom / right before the stem (position
ramp continued, so no pixel is dropped), and the mixers use real spatial windows of at most
``window_size`` pixels (uneven windows when the size is not divisible; no padding is clustered). The released
layer (``compat=True``) needs the stage maps divisible by its window counts (input multiple of 128 for
tiny / small) and raises a ``ValueError`` otherwise.

Variant table (released ``cluster_tiny`` / ``cluster_small``; ``windows`` = released window counts per side,
used by ``compat=True``; ``window_size`` = our spatial window side, used otherwise):

========  =============  ===================  ============  ===========  ========  =======  =======  ===
arch      layers         embed_dims           mlp_ratios    heads        head_dim  centres  windows  T
========  =============  ===================  ============  ===========  ========  =======  =======  ===
tiny      2, 2, 6, 2     96, 192, 384, 768    8, 8, 4, 4    3, 6, 12, 24 32        10x10    32..4    3
small     2, 2, 18, 2    96, 192, 384, 768    8, 8, 4, 4    3, 6, 12, 24 32        10x10    32..4    1*
========  =============  ===================  ============  ===========  ========  =======  =======  ===

(*) the released ``cluster_small`` keeps the class default ``num_clustering=1``; the paper uses T = 3.
"""
from typing import Dict, Optional, Sequence, Union

import torch.nn as nn
from torch.nn.init import trunc_normal_

from mmcluster.models.backbones.base import per_stage, resolve_arch
from mmcluster.models.backbones.context_cluster import ClusterBlock, ClusterMlp, PointStageBackbone
from mmcluster.models.layers.clusterformer_mixer import ClusterFormerMixer
from mmcluster.registry import MODELS, register_module

ARCH_KEYS = ('layers', 'embed_dims', 'mlp_ratios', 'heads', 'head_dim', 'num_centers', 'windows',
             'window_size', 'num_iters')


@register_module(MODELS)
class ClusterFormer(PointStageBackbone):
    """ClusterFormer backbone (NeurIPS 2023), classification and dense-prediction features.

    Args:
        arch: ``'tiny'`` or ``'small'`` (:attr:`arch_settings`), or a dict with the keys
            ``layers, embed_dims, mlp_ratios, heads, head_dim, num_centers, windows, window_size, num_iters``
            (per-stage entries as 4-lists or one value for all stages; ``num_iters`` one int).
        in_channels: image channels (two position channels are added).
        out_indices: stages (0..3, negative allowed) returned, each through ``norm{2i}``. The classifier uses
            all four (the released neck concatenates their pooled features).
        num_iters: override of the recurrences ``T``.
        window_size: override of the spatial window side(s) (int or 4-list).
        residual: M-step residual (default: ``not compat``).
        temperature: E-step temperature (``None`` = 1).
        center_ffn: FFN on the pooled centres (paper Eq. 5).
        share_q: the released head-shared ``d x d`` query map (default: ``compat``).
        dispatch: ``'soft'`` (Eq. 6), ``'hard'`` (supp. Algorithm 2) or ``'coc'`` (released); default
            ``'coc'`` if ``compat`` else ``'soft'``.
        norm_by: denominator of the ``'coc'`` dispatch (``'mask'`` released, ``'sim'``).
        update: centre-update strategy (paper Table 6c): ``'rca'`` (recurrent cross-attention, default),
            ``'kmeans'``, ``'cross_attn'`` (vanilla), ``'cosine'``; same parameters for all.
        compat: reproduce the released layer exactly (raw-reshape windows, see
            :mod:`mmcluster.models.layers.clusterformer_mixer`).
        mlp_drop: dropout in the MLPs.
        drop_path_rate: stochastic depth, linear in the global block index (as released).
        layer_scale_init_value: LayerScale init.
        frozen_stages: freeze the stem and stages ``<= frozen_stages`` (with their reducers and output norms;
            eval mode, no gradients; re-applied in ``train()``); -1 freezes nothing.
        norm_eval: keep every norm layer in eval mode during training (GroupNorm has no running stats; this
            matters for norm layers a user swaps in and is kept for the house convention).
        init_cfg: mmengine init config (e.g. ``dict(type='Pretrained', checkpoint=...)`` for converted weights).
            Without one, the MLPs get trunc-normal(0.02) weights and zero biases as in the released code; the
            other projections keep PyTorch's default (the same for the released 1x1 convs and our Linears).

    Deviations from the released ``Cluster`` (each restored by ``compat=True``, which reproduces it exactly):
    spatial windows of ``window_size`` px and any input size (released: raw-reshape windows, inputs multiple of
    128), residual M-step, full query map, Eq. 6 dispatch (cosine, no ``sim_alpha``/``sim_beta``). Always: inputs
    not divisible by 4 are padded before the stem (released: floor). ``docs/clusterformer.md`` lists them all.
    """

    arch_settings: Dict[str, dict] = {
        'tiny': dict(layers=[2, 2, 6, 2], embed_dims=[96, 192, 384, 768], mlp_ratios=[8, 8, 4, 4],
                     heads=[3, 6, 12, 24], head_dim=[32] * 4, num_centers=[10] * 4, windows=[32, 16, 8, 4],
                     window_size=[14] * 4, num_iters=3),
        'small': dict(layers=[2, 2, 18, 2], embed_dims=[96, 192, 384, 768], mlp_ratios=[8, 8, 4, 4],
                      heads=[3, 6, 12, 24], head_dim=[32] * 4, num_centers=[10] * 4, windows=[32, 16, 8, 4],
                      window_size=[14] * 4, num_iters=1),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 num_iters: Optional[int] = None,
                 window_size=None,
                 residual: Optional[bool] = None,
                 temperature: Optional[float] = None,
                 center_ffn: bool = False,
                 share_q: Optional[bool] = None,
                 dispatch: Optional[str] = None,
                 norm_by: str = 'mask',
                 update: str = 'rca',
                 compat: bool = False,
                 mlp_drop: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-5,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(4, out_indices, frozen_stages, norm_eval, init_cfg)
        arch = resolve_arch(arch, self.arch_settings, ARCH_KEYS, 'ClusterFormer')
        cfg = {k: self._stages(arch[k], k) for k in ARCH_KEYS if k != 'num_iters'}
        cfg['num_iters'] = int(arch['num_iters'] if num_iters is None else num_iters)
        if window_size is not None:
            cfg['window_size'] = self._stages(window_size, 'window_size')
        self.arch = cfg
        self.in_channels = in_channels
        self.embed_dims = cfg['embed_dims']
        self.compat = compat
        mixer_cfg = dict(num_iters=cfg['num_iters'], residual=residual, temperature=temperature,
                         center_ffn=center_ffn, share_q=share_q, dispatch=dispatch, norm_by=norm_by, update=update,
                         compat=compat)
        self._build_network(
            cfg['embed_dims'], cfg['layers'], drop_path_rate,
            lambda i, dpr: ClusterBlock(
                cfg['embed_dims'][i], cfg['mlp_ratios'][i],
                ClusterFormerMixer(cfg['embed_dims'][i], heads=cfg['heads'][i], head_dim=cfg['head_dim'][i],
                                   num_centers=cfg['num_centers'][i], window_size=cfg['window_size'][i],
                                   windows=cfg['windows'][i], **mixer_cfg),
                mlp_drop, dpr, layer_scale_init_value))
        for m in self.modules():
            if isinstance(m, ClusterMlp):
                for fc in (m.fc1, m.fc2):
                    trunc_normal_(fc.weight, std=.02)
                    nn.init.zeros_(fc.bias)
        self._freeze_stages()

    @staticmethod
    def _stages(value, name):
        if name in ('num_centers', 'windows', 'window_size') and not isinstance(value, (int, float)) and \
                len(value) == 2:
            return [tuple(value)] * 4  # one (h, w) pair for every stage
        return per_stage(value, name)
