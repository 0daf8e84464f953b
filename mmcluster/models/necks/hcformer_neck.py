"""HCFormer neck: hierarchical clustering between consecutive backbone levels (and the optional HCFormer+
transformer encoder on the top feature).

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949), Sec. 2.2, 2.5, Fig. II.

**Output contract** (what :class:`~mmcluster.models.heads.HCFormerHead`, :class:`HCFormerSegHead` and
:class:`HCFCNHead` consume): an :class:`HCFeatures` named tuple ``(feat, assigns, scales)``

* ``feat``: the top feature (stride 32; ``[B, C_top, H/32, W/32]``), after the encoder if there is one;
* ``assigns``: list of ``level`` assignment maps **coarse-to-fine**, ``[A_16<-32, A_8<-16, A_4<-8]`` for
  level 3, each ``[B, 9, H_l, W_l]`` (see :class:`~mmcluster.models.layers.HCClustering`); decoding a
  stride-32 map through them in order gives stride ``32 / 2**level``;
* ``scales``: the learnable scales ``s`` of the clustering modules in the same order (for the L1 regulariser
  the heads add to their losses).

It is a plain tuple, so ``x[0]`` is the top feature; a backbone that clusters internally may return the same
triple (``scales`` may be empty) and use the heads without this neck.

Clustering pairs. Level ``L`` clusters the ``L`` top transitions; pair ``l`` (``l = 0`` = the top one) clusters
a fine map of level ``f = n-2-l`` onto a coarse map of level ``f + 1``, as selected by ``coarse_inputs``:

* ``'first_block'``: the official ResNet pairing, inputs ``(res2, res3, res4, res5, b3, b4, b5)`` from
  :class:`~mmcluster.models.backbones.HCResNet` with ``first_block_outs=True``: fine ``res_f``, coarse
  ``b_{f+1}`` = output of the first (downsampling) block of the next stage (same channels as ``res_{f+1}``).
* ``'patch_merging'``: the official Swin pairing, inputs ``(out_0..out_3, pre_0..pre_2, down_0..down_2)`` from
  :class:`~mmcluster.models.backbones.HCSwinTransformer`: fine ``pre_f`` = the stage output before its output
  norm, coarse ``down_f`` = its PatchMerging output.
* ``'next_stage'`` (default, any backbone): inputs = the ``n`` stage outputs, fine ``x[f]``, coarse ``x[f+1]``
  (the next stage's output). **Deviation** from both official backbones (kept as an option for backbones that
  expose nothing else, e.g. mmdet / mmseg / mmcluster backbones with ``out_indices=(0, 1, 2, 3)``).

HCFormer+ (``encoder=dict(...)``): ``Conv1x1(C_top -> d) + GroupNorm(32)``, sine positional encoding, and an mmdet
``DetrTransformerEncoder`` (post-norm; paper: 6 layers, d 256, 8 heads, FFN 2048, dropout 0.1) on the top
feature, which then has ``d`` channels.

Learning rate and decay: the official code keeps the clustering modules and the HCFormer+ encoder inside the
backbone, so they get the backbone's lr multiplier (0.1), and gives every norm layer no weight decay; the
HCFormer configs do the same with ``paramwise_cfg.custom_keys`` (``docs/hcformer.md``).

Official checkpoints (clustering modules under ``backbone.clustering_layers.*`` / ``backbone.layers.{i}.clustering.*``,
encoder under ``backbone.aux.*``) load into this neck through ``tools/model_converters/hcformer2mmcluster.py``.

Cluster records: each clustering module records a hard assignment (see
:class:`~mmcluster.models.layers.HCClustering`); the record of pair ``l + 1`` names the record of pair ``l`` as
its ``parent`` (the clusters of the finer level are the pixels of the coarser one).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch.nn as nn
from mmdet.models.layers import DetrTransformerEncoder, SinePositionalEncoding
from mmengine.model import BaseModule, caffe2_xavier_init
from torch import Tensor

from mmcluster.models.layers.hc_clustering import HCClustering
from mmcluster.registry import MODELS, register_module

COARSE_INPUTS = ('next_stage', 'first_block', 'patch_merging')


class HCFeatures(NamedTuple):
    """What the HCFormer neck returns (see the module docstring)."""
    feat: Tensor
    assigns: List[Tensor]
    scales: List[Tensor]


@register_module(MODELS)
class HCFormerNeck(BaseModule):
    """Clustering between consecutive levels of a multi-scale backbone; returns :class:`HCFeatures`.

    Args:
        in_channels: channels of the backbone levels, fine to coarse (e.g. ``[256, 512, 1024, 2048]``;
            strides 4, 8, 16, 32).
        level: hierarchical level = number of clustered transitions, counted from the top (0 to
            ``len(in_channels) - 1``; paper: 3).
        embed_dims: ``C_F`` of the clustering modules (paper: 128).
        init_scale: initial scale ``s`` (parameter ``scale``) of every clustering module (paper: 0.1).
        coarse_inputs: ``'first_block'`` (official ResNet pairing), ``'patch_merging'`` (official Swin pairing) or
            ``'next_stage'`` (any backbone; a deviation). See the module docstring.
        encoder: ``DetrTransformerEncoder`` config for HCFormer+ (``num_layers``, ``layer_cfg``); None = HCFormer.
        encoder_positional_encoding: sine encoding of the encoder; ``num_feats`` defaults to ``d / 2``.
        encoder_num_groups: GroupNorm groups after the encoder's input projection.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 level: int = 3,
                 embed_dims: int = 128,
                 init_scale: float = 0.1,
                 coarse_inputs: str = 'next_stage',
                 encoder: Optional[dict] = None,
                 encoder_positional_encoding: Optional[dict] = None,
                 encoder_num_groups: int = 32,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        num_levels = len(self.in_channels)
        if not 0 <= level <= num_levels - 1:
            raise ValueError(f'level must be in [0, {num_levels - 1}] for {num_levels} input levels, got {level}')
        if coarse_inputs not in COARSE_INPUTS:
            raise ValueError(f'coarse_inputs must be one of {COARSE_INPUTS}, got {coarse_inputs!r}')
        self.level = level
        self.coarse_inputs = coarse_inputs
        # index 0 = the top pair (fine = in_channels[-2], coarse = in_channels[-1]), as in the official list
        self.clustering_layers = nn.ModuleList([
            HCClustering(self.in_channels[num_levels - 2 - l], self.in_channels[num_levels - 1 - l],
                         embed_dims=embed_dims, init_scale=init_scale) for l in range(level)
        ])
        for l in range(1, level):
            self.clustering_layers[l].set_record_parent(f'clustering_layers.{l}', f'clustering_layers.{l - 1}')
        self.with_encoder = encoder is not None
        self.out_channels = self.in_channels[-1]
        if self.with_encoder:
            self.encoder = DetrTransformerEncoder(**encoder)
            d = self.encoder.embed_dims
            self.input_proj = nn.Sequential(nn.Conv2d(self.in_channels[-1], d, 1), nn.GroupNorm(encoder_num_groups, d))
            pe = dict(num_feats=d // 2, normalize=True)
            pe.update(encoder_positional_encoding or {})
            self.encoder_positional_encoding = SinePositionalEncoding(**pe)
            self.out_channels = d

    def init_weights(self) -> None:
        super().init_weights()
        if self.with_encoder:
            caffe2_xavier_init(self.input_proj[0], bias=0)
            for p in self.encoder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    @property
    def num_inputs(self) -> int:
        n = len(self.in_channels)
        return dict(next_stage=n, first_block=2 * n - 1, patch_merging=3 * n - 2)[self.coarse_inputs]

    @property
    def input_channels(self) -> List[int]:
        """The channels of each of the :attr:`num_inputs` backbone outputs (read by the build-time channel check,
        ``mmcluster/models/utils/channel_check.py``): the levels, then the coarse maps of the pairs."""
        c = self.in_channels
        return c + dict(next_stage=[], first_block=c[1:], patch_merging=c[:-1] + c[1:])[self.coarse_inputs]

    def pair(self, inputs: Sequence[Tensor], fine: int) -> Tuple[Tensor, Tensor]:
        """The (fine, coarse) maps clustered for the transition from level ``fine`` to ``fine + 1``."""
        n = len(self.in_channels)
        if self.coarse_inputs == 'next_stage':
            return inputs[fine], inputs[fine + 1]
        if self.coarse_inputs == 'first_block':
            return inputs[fine], inputs[n + fine]
        return inputs[n + fine], inputs[2 * n - 1 + fine]

    def forward(self, inputs: Sequence[Tensor]) -> HCFeatures:
        if len(inputs) != self.num_inputs:
            raise ValueError(f'HCFormerNeck(coarse_inputs={self.coarse_inputs!r}) expects {self.num_inputs} '
                             f'backbone outputs, got {len(inputs)} (first_block: HCResNet(first_block_outs=True); '
                             'patch_merging: HCSwinTransformer(pair_outs=True); next_stage: the stage outputs)')
        n = len(self.in_channels)
        assigns, scales = [], []
        for l, clustering in enumerate(self.clustering_layers):
            assigns.append(clustering(*self.pair(inputs, n - 2 - l)))
            scales.append(clustering.scale)
        feat = inputs[n - 1]
        if self.with_encoder:
            feat = self.encode(feat)
        return HCFeatures(feat, assigns, scales)

    def encode(self, x: Tensor) -> Tensor:
        """HCFormer+ encoder on the top feature: ``[B, C_top, h, w]`` -> ``[B, d, h, w]``."""
        x = self.input_proj(x)
        b, c, h, w = x.shape
        pos = self.encoder_positional_encoding(x.new_zeros((b, h, w), dtype=bool))
        query = self.encoder(query=x.flatten(2).transpose(1, 2), query_pos=pos.flatten(2).transpose(1, 2),
                             key_padding_mask=None)
        return query.transpose(1, 2).reshape(b, c, h, w)
