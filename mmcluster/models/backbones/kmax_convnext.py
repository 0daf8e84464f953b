"""ConvNeXt as kMaX-DeepLab's released models run it: TF-style padding before each downsampling, no output norms.

Paper: Qihang Yu et al., "k-means Mask Transformer", ECCV 2022 (kMaX-DeepLab; ConvNeXt-T/S/B/L backbones,
Tab. 1); ConvNeXt: Zhuang Liu et al., "A ConvNet for the 2020s", CVPR 2022. See ``docs/kmax_deeplab.md``.

The authors' PyTorch code (bytedance/kmax-deeplab, ``modeling/backbone/convnext.py``) differs from
mmpretrain's :class:`~mmpretrain.models.backbones.ConvNeXt` in its forward only, and its weights keep
mmpretrain's keys once ``dwconv`` / ``pwconv1`` / ``pwconv2`` are renamed
(``tools/model_converters/kmax2mmcluster.py``):

* ``tf_padding=True``: zeros are padded on the right / bottom as TF's ``SAME`` padding would, ``(1, 2)`` before
  the 4x4 stem and ``(0, 1)`` before each 2x2 downsampling, so that a ``1281 x 1281`` input (the kMaX training
  size) gives ``321 / 161 / 81 / 41`` maps (``ceil``-like, the grids the pixel decoder's axial attention and the
  ResNet models use), where mmpretrain's ConvNeXt gives ``320 / 160 / 80 / 40``;
* ``out_norms=False``: the stage outputs are returned as they are; mmpretrain adds a LayerNorm ``norm{i}`` on
  every output (``out_norms=True`` keeps them).

Both default to the official behaviour. Converted official weights seen through mmpretrain's ConvNeXt give
different features (a grid shifted by up to one pixel per level, re-normalised outputs): a silent wrong result
that this class removes. Everything else (blocks, layer scale, stochastic depth, LayerNorm eps ``1e-6``) is
mmpretrain's, which matches the official definition.

Conventions of mmcluster's backbones: ``frozen_stages=k`` freezes the stem and stages ``0..k`` (``-1``: none;
mmpretrain's own argument counts stages instead); outputs are dense maps (no global pooling).
"""
from typing import Dict, List, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.backbones import ConvNeXt
from torch import Tensor

from mmcluster.models.utils.input_check import register_input_check
from mmcluster.registry import MODELS, register_module

# (left, right, top, bottom) zeros before the stem and before each later downsampling (official forward_features)
STEM_PADDING = (1, 2, 1, 2)
DOWNSAMPLE_PADDING = (0, 1, 0, 1)


@register_module(MODELS)
class KMaXConvNeXt(ConvNeXt):
    """mmpretrain's ConvNeXt with the official kMaX-DeepLab forward (see the module docstring).

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` or ``'large'`` (the kMaX-DeepLab releases), or a
            dict with ``depths`` and ``channels``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose outputs are returned. Defaults to ``(0, 1, 2, 3)``.
        drop_path_rate (float): Stochastic depth rate (linear over the blocks). Official COCO ConvNeXt-T: 0.3.
        layer_scale_init_value (float): Initial layer scale. Defaults to 1e-6.
        tf_padding (bool): Pad ``(1, 2)`` before the stem and ``(0, 1)`` before each downsampling (official).
            ``False``: mmpretrain's ConvNeXt (no padding). Defaults to True.
        out_norms (bool): Add mmpretrain's LayerNorm on every output (absent from the official model).
            Defaults to False.
        frozen_stages (int): Freeze the stem and stages ``0..frozen_stages``; -1 freezes nothing.
        init_cfg (dict | list[dict], optional): mmengine init config; a ``Pretrained`` entry loads weights.
        **kwargs: Other arguments of mmpretrain's ``ConvNeXt`` (``norm_cfg``, ``act_cfg``, ``with_cp``, ...).

    Deviation: none from the official definition with the defaults (parity test
    ``tests/test_models/test_layers/test_kmax_convnext.py``).
    """
    arch_settings = {name: ConvNeXt.arch_settings[name] for name in ('tiny', 'small', 'base', 'large')}

    def __init__(self,
                 arch: Union[str, Dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 layer_scale_init_value: float = 1e-6,
                 tf_padding: bool = True,
                 out_norms: bool = False,
                 frozen_stages: int = -1,
                 init_cfg=None,
                 **kwargs) -> None:
        if isinstance(arch, str) and arch not in self.arch_settings:
            raise ValueError(f'unknown arch {arch!r}; valid: {sorted(self.arch_settings)} or a dict with '
                             f"'depths' and 'channels'")
        if init_cfg is None:  # mmpretrain's default initialisation
            init_cfg = [dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.),
                        dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.)]
        super().__init__(arch=arch, in_channels=in_channels, out_indices=list(out_indices),
                         drop_path_rate=drop_path_rate, layer_scale_init_value=layer_scale_init_value,
                         frozen_stages=frozen_stages + 1, gap_before_final_norm=False, init_cfg=init_cfg,
                         **kwargs)
        self.in_channels = in_channels  # mmpretrain's ConvNeXt does not keep it
        register_input_check(self)
        self.tf_padding = tf_padding
        self.out_norms = out_norms
        if not out_norms:
            for i in self.out_indices:
                setattr(self, f'norm{i}', nn.Identity())

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned maps (the stages of ``out_indices``)."""
        return [int(self.channels[i]) for i in self.out_indices]

    def train(self, mode: bool = True) -> 'KMaXConvNeXt':
        super().train(mode)  # re-applies the freezing; mmpretrain's ``train`` returns None, nn.Module's self
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages):
            if self.tf_padding:
                x = F.pad(x, STEM_PADDING if i == 0 else DOWNSAMPLE_PADDING)
            x = stage(self.downsample_layers[i](x))
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
        return tuple(outs)
