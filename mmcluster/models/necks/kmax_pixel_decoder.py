"""kMaX-DeepLab pixel decoder: axial-attention and bottleneck block groups with resized fuses, stride 32 -> 4.

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022), Sec. 3.3 / Fig. 3. Official PyTorch code
``kMaXPixelDecoder`` (bytedance/kmax-deeplab). Backbone levels ``res2..res5`` (strides 4..32)::

    x = Stage_0(LN_0(res5))                                   # axial x1, 4 * 512 = 2048 ch, stride 32
    for i in 1..3:  x = Stage_i(ResizedFuse_i(x, LN_i(res_{5-i})))   # axial x5 (1024), bottleneck x1 (512, 256)

Outputs: the stride-4 map (``panoptic_features``, 256 ch, read by the final predictor), the stride-32/16/8
maps (``multi_scale_features``, read by the 2 + 2 + 2 k-means layers) and the backbone's res5, res3, res2
(``semantic_features``, read by the auxiliary semantic head).

Deviation (``docs/kmax_deeplab.md``): the official decoder's relative positions are sized for the training
crop (1281 -> 41 / 81 positions), so every image must be padded to that size. Here the offsets are built for
each input (:class:`~mmcluster.models.layers.KMaXRelativePositionalEncoding`): any input size, no padding.
Padding to the training size (mmdet ``Pad(size=...)`` / ``BatchFixedSizePad``) reproduces the official
behaviour exactly.
"""
from typing import List, Optional, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmcluster.models.layers.kmax_axial_attention import MAX_SPAN
from mmcluster.models.layers.kmax_blocks import BLOCK_TYPES, KMaXBlockGroup, KMaXLayerNorm2d, KMaXResizedFuse
from mmcluster.models.layers.kmax_conv_bn import KMAX_NORM_CFG
from mmcluster.registry import MODELS, register_module

__all__ = ['KMaXPixelDecoder']


@register_module(MODELS)
class KMaXPixelDecoder(BaseModule):
    """kMaX-DeepLab pixel decoder.

    Args:
        in_channels: backbone channels from the finest level (stride 4) to the coarsest (stride 32),
            e.g. ``(256, 512, 1024, 2048)`` for ResNet-50. Defaults to that.
        dec_layers: blocks per stage, from the coarsest level. Defaults to ``(1, 5, 1, 1)`` (official COCO).
        dec_channels: base width per stage, coarsest first (stage output = 4x). Defaults to
            ``(512, 256, 128, 64)``.
        layer_types: ``'axial'`` / ``'bottleneck'`` per stage. Defaults to ``('axial', 'axial', 'bottleneck',
            'bottleneck')``.
        num_heads: axial-attention heads. Defaults to 8.
        drop_path_rate: stochastic depth of every block. Defaults to 0 (official).
        max_span: relative-position span. Defaults to 255 (official).
        norm_cfg: norm config. Defaults to BN(eps 1e-3, momentum 0.01); SyncBN in the full configs.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 dec_layers: Sequence[int] = (1, 5, 1, 1), dec_channels: Sequence[int] = (512, 256, 128, 64),
                 layer_types: Sequence[str] = ('axial', 'axial', 'bottleneck', 'bottleneck'),
                 num_heads: int = 8, drop_path_rate: float = 0.0, max_span: int = MAX_SPAN,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        n = len(in_channels)
        if not (len(dec_layers) == len(dec_channels) == len(layer_types) == n):
            raise ValueError(f'in_channels ({n}), dec_layers ({len(dec_layers)}), dec_channels '
                             f'({len(dec_channels)}) and layer_types ({len(layer_types)}) must have equal lengths')
        for t in layer_types:
            if t not in BLOCK_TYPES:
                raise ValueError(f'layer_types entries must be one of {BLOCK_TYPES}, got {t!r}')
        if n < 3:
            raise ValueError(f'the pixel decoder needs at least 3 backbone levels, got {n}')
        coarse_first = list(in_channels)[::-1]
        self.num_stages = n
        self.in_norms = nn.ModuleList(KMaXLayerNorm2d(c) for c in coarse_first)
        self.stages = nn.ModuleList()
        self.resized_fuses = nn.ModuleList()
        for i in range(n):
            inplanes = coarse_first[i] if i == 0 else dec_channels[i]
            self.stages.append(KMaXBlockGroup(inplanes, dec_channels[i], dec_layers[i], layer_types[i],
                                              num_heads=num_heads, drop_path_rate=drop_path_rate,
                                              max_span=max_span, norm_cfg=norm_cfg))
            if i > 0:
                self.resized_fuses.append(KMaXResizedFuse(4 * dec_channels[i - 1], coarse_first[i],
                                                          dec_channels[i], norm_cfg=norm_cfg))
        self.out_channels = [4 * c for c in dec_channels]  # coarsest first

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        """Args: ``feats`` the backbone levels, finest first (``res2..res5``).

        Returns:
            ``(panoptic_features, semantic_features, multi_scale_features)``: the finest decoder map, the
            backbone's ``[res5, res3, res2]``, and the decoder maps at strides 32 / 16 / 8.
        """
        if len(feats) != self.num_stages:
            raise ValueError(f'expected {self.num_stages} backbone levels (finest first), got {len(feats)}')
        levels = list(feats)[::-1]
        x = self.in_norms[0](levels[0])
        out = []
        for i in range(self.num_stages - 1):
            x = self.stages[i](x)
            out.append(x)
            x = self.resized_fuses[i](x, self.in_norms[i + 1](levels[i + 1]))
        out.append(self.stages[-1](x))
        semantic_features = [levels[0], levels[2], levels[3] if len(levels) > 3 else levels[2]]
        return out[-1], semantic_features, out[:3]
