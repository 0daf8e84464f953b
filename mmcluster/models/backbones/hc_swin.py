"""Swin Transformer exposing HCFormer's official clustering pairs: each stage's output *before* its output norm
and the PatchMerging output made from it.

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949), Sec. 2.5. The official ``HCSwinTransformer`` clusters, inside each downsampling stage,
the stage's last block output ``x_i`` (before the output norm ``norm{i}``) onto ``PatchMerging(x_i)`` (the
input of the next stage's blocks). mmdet's :class:`~mmdet.models.backbones.SwinTransformer` computes both but
returns only the normalised stage outputs; :class:`HCSwinTransformer` is that class, unchanged in its
feed-forward path and parameters (mmdet's Swin weights and converter apply), whose ``forward`` also returns
them::

    (out_0, ..., out_{n-1},  pre_0, ..., pre_{n-2},  down_0, ..., down_{n-2})

with ``out_i = norm_i(pre_i)`` (``[B, C_i, H_i, W_i]``), ``pre_i`` the stage output before ``norm_i`` and
``down_i = PatchMerging_i(pre_i)`` (``[B, 2 C_i, ceil(H_i / 2), ceil(W_i / 2)]``). The
:class:`~mmcluster.models.necks.HCFormerNeck` with ``coarse_inputs='patch_merging'`` clusters ``pre_i`` onto
``down_i``. With ``pair_outs=False`` it is mmdet's Swin.

Differences from the official Swin (Mask2Former's copy inside HCSwin): none in the computation (the tests match a
tiny official HCFormer+ to 1e-9 in float64); mmdet's PatchMerging concatenates each 2x2 window in ``nn.Unfold``'s
channel order, so official ``downsample.reduction`` / ``downsample.norm`` weights are permuted by
``tools/model_converters/hcformer2mmcluster.py``; module names differ (``stages`` / ``w_msa`` / ``ffn``, mapped by the
converter). The clustering modules live in :class:`~mmcluster.models.necks.HCFormerNeck`, not in the backbone.
"""
from typing import List, Tuple

from mmdet.models.backbones import SwinTransformer
from torch import Tensor

from mmcluster.models.utils.input_check import register_input_check
from mmcluster.registry import MODELS, register_module


@register_module(MODELS)
class HCSwinTransformer(SwinTransformer):
    """mmdet Swin Transformer that also returns the pre-norm stage outputs and the PatchMerging outputs.

    Args:
        pair_outs: append ``(pre_0..pre_{n-2}, down_0..down_{n-2})`` to the stage outputs (see the module
            docstring). Needs ``out_indices`` to list every stage. Defaults to True.
        **kwargs: :class:`mmdet.models.backbones.SwinTransformer` arguments (``embed_dims``, ``depths``,
            ``num_heads``, ``window_size``, ``drop_path_rate``, ``frozen_stages``, ``init_cfg``, ...).
    """

    def __init__(self, pair_outs: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.in_channels = kwargs.get('in_channels', 3)  # mmdet's SwinTransformer does not keep it
        register_input_check(self)
        self.pair_outs = pair_outs
        n = len(self.stages)
        if pair_outs and tuple(self.out_indices) != tuple(range(n)):
            raise ValueError(f'pair_outs needs out_indices={tuple(range(n))}, got {tuple(self.out_indices)}')

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned maps: the stages of ``out_indices``, then (``pair_outs``) the pre-norm outputs
        and the PatchMerging outputs (twice the width) of every stage but the last."""
        c = [int(n) for n in self.num_features]
        outs = [c[i] for i in self.out_indices]
        return outs + (c[:-1] + c[1:] if self.pair_outs else [])

    def train(self, mode: bool = True) -> 'HCSwinTransformer':
        super().train(mode)  # re-applies the freezing; mmdet's ``train`` returns None, nn.Module's self
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if not self.pair_outs:
            return tuple(super().forward(x))
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)
        outs, pres, downs = [], [], []
        for i, stage in enumerate(self.stages):
            x, hw_shape, out, out_hw_shape = stage(x, hw_shape)
            c = self.num_features[i]
            if stage.downsample is not None:
                pres.append(out.view(-1, *out_hw_shape, c).permute(0, 3, 1, 2).contiguous())
                downs.append(x.view(-1, *hw_shape, x.shape[-1]).permute(0, 3, 1, 2).contiguous())
            out = getattr(self, f'norm{i}')(out)
            outs.append(out.view(-1, *out_hw_shape, c).permute(0, 3, 1, 2).contiguous())
        return tuple(outs) + tuple(pres) + tuple(downs)
