"""k-means cross-attention: the kMaX-DeepLab transformer layer, with the CMT-DeepLab clustering as a switch.

Papers: Qihang Yu et al., "k-means Mask Transformer" (kMaX-DeepLab, ECCV 2022), Sec. 3 (k-means cross-attention);
Qihang Yu et al., "CMT-DeepLab: Clustering Mask Transformers for Panoptic Segmentation" (CVPR 2022), Sec. 3.
Official kMaX PyTorch code: bytedance/kmax-deeplab ``kMaXTransformerLayer``. Details: ``docs/kmax_deeplab.md``.

A mask transformer's cross-attention updates the cluster centres ``C`` (queries, ``[L, D]``) from the pixels
with a softmax over the ``HW`` pixels. kMaX re-reads it as k-means (paper Sec. 3): the
softmax is taken over the ``L`` clusters and then replaced by a hard argmax:

    A = argmax_L(Q_c K_p^T)          (E-step: one-hot assignment of each pixel to one centre)
    C <- C + A V_p                   (M-step: the assignment-weighted SUM of pixel values)

Symbols of the code (``F``: pixel features ``[B, C_p, H, W]``, ``Q``: centres ``[B, D, L]``, ``D = 256``,
``C_b = 2 * 128`` bottleneck channels, ``BN_0`` = BatchNorm with weight initialised to 0)::

    P   = GELU(BN(W_p GELU(F)))                     # [B, C_b, H, W]   pixel_conv1_bn_act
    Q_s = GELU(BN(W_q Q))                           # [B, C_b, L]      query_conv1_bn_act
    V   = BN(W_v P)                                 # [B, C_v, HW]     pixel_v_conv_bn, C_v = 256
    Z, class = Predictor(Q_s, P)                    # Z: [B, L, H, W] mask logits (KMaXPredictor)
    A   = onehot(argmax_l Z)  (no gradient)         # [B, L, HW]       E-step
    U   = A V^T                                     # [B, C_v, L]      M-step, a sum, no division
    Q  <- Q + DropPath(BN_0(W_u BN(U)))             # kmeans_query_conv3_bn(kmeans_query_batch_norm_retrieved_value)
    Q  <- GELU(Q + DropPath(BN_0(W_o SelfAttn(Q_s))))   # query_qkv_conv_bn -> KMaXAttention -> query_conv3_bn
    Q  <- GELU(Q + DropPath(BN_0(W_2 GELU(BN(W_1 Q)))))  # query_ffn_conv{1,2}

Switches (official behaviour by default):

* ``self_attn_input='pre_kmeans'`` (official code: the self-attention reads ``Q_s``, computed from the layer's
  input centres) or ``'post_kmeans'`` (paper Fig. 3: it reads the updated centres; we recompute
  ``Q_s' = GELU(BN(W_q Q))`` with the same ``W_q`` after the k-means update, no new parameters).
* ``assignment='argmax'`` (kMaX) or ``'softmax'`` (CMT-DeepLab: ``A = softmax_l(Z)``, gradients flow through
  the assignment). The M-step stays the weighted sum ``A V^T`` in both.
* ``mask_residual`` (CMT-DeepLab "residual path for the assignments"): ``Z <- Z + resize(Z_prev)`` where
  ``Z_prev`` is the previous layer's mask logits (the reference mask), bilinearly resized to this layer's
  grid (``align_corners = (W % 2 == 1)`` as the official aux outputs); the first layer has no ``Z_prev``.
* ``coord_conv`` (CMT-DeepLab location-sensitive clustering, as far as the paper specifies it): the pixel
  projection reads ``[GELU(F), x, y]`` with normalised coordinates in ``[-1, 1]`` (CoordConv), and each centre
  gets ``W_xy c_l`` added to ``Q_s``, where ``c_l`` is the centroid of its reference mask
  ``softmax_l(Z_prev)`` (``sum_p a_lp xy_p / sum_p a_lp``; zero without ``Z_prev``). The paper's exact
  formulation is not public; this is our resolution (``docs/kmax_deeplab.md``).
* ``cross_attention_term`` (CMT-DeepLab: the centre update "combines the clustering update with the original
  cross-attention"): ``U = A V^T + softmax_HW(Z) V^T``, the second term being a standard cross-attention
  (softmax over the pixels) on the same logits. Our resolution of an unspecified combination (a plain sum).
  CMT-DeepLab's pixel update from the clusters is not implemented.

Each layer records its E-step through :class:`~mmcluster.models.utils.cluster_record.ClusterRecorder`: kind
``'hard'`` (``[B, HW]`` cluster ids) for argmax, ``'soft'`` (``[B, HW, L]``) for softmax; ``step`` = the
layer's index in the decoder.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcluster.models.utils.cluster_record import ClusterRecorder
from .kmax_attention import LOW_PRECISION, KMaXAttention
from .kmax_conv_bn import KMAX_NORM_CFG, KMaXConvBN, build_kmax_norm, trunc_normal_tf_
from .kmax_predictor import KMaXPredictor

__all__ = ['KMeansCrossAttentionLayer', 'DropPath', 'kmax_resize', 'coordinate_grid', 'kmeans_update',
           'kmeans_assignment']

ASSIGNMENTS = ('argmax', 'softmax')
SELF_ATTN_INPUTS = ('pre_kmeans', 'post_kmeans')


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at rate 0 or in eval mode)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def kmax_resize(x: Tensor, size) -> Tensor:
    """Bilinear resize with the official TF convention ``align_corners = (target W % 2 == 1)``."""
    size = tuple(int(s) for s in size)  # Python ints also under tracing (get_flops, ONNX)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=size[-1] % 2 == 1)


def coordinate_grid(h: int, w: int, like: Tensor) -> Tensor:
    """``[2, H, W]`` normalised pixel coordinates ``(x, y)`` in ``[-1, 1]`` (0 for a length-1 axis)."""
    ys = torch.linspace(-1, 1, h, dtype=like.dtype, device=like.device) if h > 1 else like.new_zeros(1)
    xs = torch.linspace(-1, 1, w, dtype=like.dtype, device=like.device) if w > 1 else like.new_zeros(1)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([gx, gy])


class _ClusterSum(torch.autograd.Function):
    """``U[b, :, l] = sum_{m: index[b, m] = l} V[b, :, m]``: the M-step ``A V^T`` of a one-hot ``A`` as a
    segment sum (``scatter_add_``, ``O(D N)``) instead of the dense ``[D, N] x [N, L]`` product (``O(D N L)``);
    its gradient is a gather (``dL/dV[b, :, m] = dL/dU[b, :, index[b, m]]``), again without the one-hot matrix:
    per sample an ``index_select`` of the columns (1.7x faster than ``torch.gather`` with the index expanded over
    the channels: 2.7 against 4.7 ms for 256 x 25921)."""

    @staticmethod
    def forward(ctx, value: Tensor, index: Tensor, num_clusters: int) -> Tensor:
        b, d, n = value.shape
        ctx.save_for_backward(index)
        return value.new_zeros(b, d, num_clusters).scatter_add_(2, index[:, None, :].expand(b, d, n), value)

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, = ctx.saved_tensors
        grad_value = grad.new_empty(grad.shape[0], grad.shape[1], index.shape[1])
        for b in range(grad.shape[0]):
            torch.index_select(grad[b], 1, index[b], out=grad_value[b])
        return grad_value, None, None


def kmeans_assignment(mask_logits: Tensor) -> Tensor:
    """E-step index ``[B, HW]``: the cluster of the largest logit of each pixel (ties: the first, as the
    official ``max(1)``), no gradient."""
    with torch.no_grad():
        return mask_logits.detach().flatten(2).max(dim=1).indices


def kmeans_update(mask_logits: Tensor, pixel_value: Tensor, index: Optional[Tensor] = None) -> Tensor:
    """kMaX-DeepLab's k-means cross-attention (paper Sec. 3): hard E-step + M-step, ``[B, D, L]``.

    ``A = onehot(argmax_l Z)`` (no gradient) and ``U = A V^T``, i.e. each cluster's update is the sum of the
    values of the pixels assigned to it. Equal (up to float summation order) to the official
    ``einsum('blm,bdm->bdl', A, V)`` with the one-hot ``A``, without making ``A``:
    ``tools/benchmark/clustering_ops.py`` compares the two.

    Args:
        mask_logits: ``Z`` ``[B, L, H, W]`` (or ``[B, L, HW]``); not differentiated.
        pixel_value: ``V`` ``[B, D, HW]``.
        index: the E-step's cluster index ``[B, HW]`` when already computed (:func:`kmeans_assignment`).
    """
    if index is None:
        index = kmeans_assignment(mask_logits)
    num_clusters = mask_logits.shape[1]
    # accelerators: the dense product is fast and, unlike a scatter-add with atomics on CUDA, deterministic;
    # tracers (get_flops, ONNX) cannot record a custom Function called with a Python int
    if pixel_value.device.type != 'cpu' or torch.jit.is_tracing():
        onehot = F.one_hot(index, num_clusters).to(pixel_value.dtype)  # [B, HW, L]
        return torch.bmm(pixel_value, onehot)
    return _ClusterSum.apply(pixel_value, index, num_clusters)


class KMeansCrossAttentionLayer(nn.Module, ClusterRecorder):
    """kMaX transformer layer: k-means cross-attention, query self-attention and FFN.

    Args:
        in_channels_pixel: channels ``C_p`` of the pixel features.
        num_classes: class logits of the layer's predictor, void included (``K + 1``).
        in_channels_query: centre channels ``D``. Defaults to 256.
        base_filters: base width. Defaults to 128.
        num_heads: self-attention heads. Defaults to 8.
        bottleneck_expansion: ``C_b = base_filters * bottleneck_expansion``. Defaults to 2.
        key_expansion: key channels ``= base_filters * key_expansion``. Defaults to 1.
        value_expansion: value channels ``C_v = base_filters * value_expansion``. Defaults to 2.
        ffn_channels: FFN hidden channels. Defaults to 2048.
        drop_path_rate: stochastic depth of the three residual updates. Defaults to 0.
        assignment: ``'argmax'`` (kMaX) or ``'softmax'`` (CMT-DeepLab). Defaults to ``'argmax'``.
        self_attn_input: ``'pre_kmeans'`` (official code) or ``'post_kmeans'`` (paper figure).
        mask_residual: add the previous layer's mask logits (CMT-DeepLab). Defaults to False.
        coord_conv: location-sensitive clustering with coordinates (CMT-DeepLab). Defaults to False.
        cross_attention_term: add the pixel-softmax cross-attention update (CMT-DeepLab). Defaults to False.
        layer_index: the layer's index in the decoder, recorded as ``step``. Defaults to 0.
        norm_cfg: norm config. Defaults to BN(eps 1e-3, momentum 0.01).

    Deviations: none in the default (official) configuration; see the module docstring for the switches.
    Parameter names are the official ones without the leading underscore (``predictor`` for the official,
    misspelled ``_predcitor``); ``tools/model_converters/kmax2mmcluster.py`` maps them.
    """

    def __init__(self, in_channels_pixel: int, num_classes: int, in_channels_query: int = 256,
                 base_filters: int = 128, num_heads: int = 8, bottleneck_expansion: float = 2,
                 key_expansion: float = 1, value_expansion: float = 2, ffn_channels: int = 2048,
                 drop_path_rate: float = 0.0, assignment: str = 'argmax', self_attn_input: str = 'pre_kmeans',
                 mask_residual: bool = False, coord_conv: bool = False, cross_attention_term: bool = False,
                 layer_index: int = 0,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG) -> None:
        super().__init__()
        if assignment not in ASSIGNMENTS:
            raise ValueError(f'assignment must be one of {ASSIGNMENTS}, got {assignment!r}')
        if self_attn_input not in SELF_ATTN_INPUTS:
            raise ValueError(f'self_attn_input must be one of {SELF_ATTN_INPUTS}, got {self_attn_input!r}')
        self.assignment = assignment
        self.self_attn_input = self_attn_input
        self.mask_residual = mask_residual
        self.coord_conv = coord_conv
        self.cross_attention_term = cross_attention_term
        self.layer_index = layer_index
        self.num_heads = num_heads
        bottleneck = int(round(base_filters * bottleneck_expansion))
        self.key_channels = int(round(base_filters * key_expansion))
        self.value_channels = int(round(base_filters * value_expansion))
        if self.key_channels % num_heads or self.value_channels % num_heads:
            raise ValueError(f'key ({self.key_channels}) and value ({self.value_channels}) channels must be '
                             f'divisible by num_heads ({num_heads})')
        init_std = bottleneck ** -0.5

        self.drop_path_kmeans = DropPath(drop_path_rate)
        self.drop_path_attn = DropPath(drop_path_rate)
        self.drop_path_ffn = DropPath(drop_path_rate)

        self.query_conv1_bn_act = KMaXConvBN(in_channels_query, bottleneck, conv_type='1d', norm_cfg=norm_cfg,
                                             act='gelu')
        self.pixel_conv1_bn_act = KMaXConvBN(in_channels_pixel + (2 if coord_conv else 0), bottleneck,
                                             norm_cfg=norm_cfg, act='gelu')
        self.query_qkv_conv_bn = KMaXConvBN(bottleneck, 2 * self.key_channels + self.value_channels,
                                            conv_type='1d', norm_cfg=norm_cfg)
        trunc_normal_tf_(self.query_qkv_conv_bn.conv.weight, std=init_std)
        self.pixel_v_conv_bn = KMaXConvBN(bottleneck, self.value_channels, norm_cfg=norm_cfg)
        trunc_normal_tf_(self.pixel_v_conv_bn.conv.weight, std=init_std)
        self.query_self_attention = KMaXAttention(self.value_channels, num_heads, norm_cfg=norm_cfg)
        self.query_conv3_bn = KMaXConvBN(self.value_channels, in_channels_query, conv_type='1d',
                                         norm_cfg=norm_cfg, norm_init=0.0)
        self.query_ffn_conv1_bn_act = KMaXConvBN(in_channels_query, ffn_channels, conv_type='1d',
                                                 norm_cfg=norm_cfg, act='gelu')
        self.query_ffn_conv2_bn = KMaXConvBN(ffn_channels, in_channels_query, conv_type='1d', norm_cfg=norm_cfg,
                                             norm_init=0.0)
        self.predictor = KMaXPredictor(bottleneck, num_classes, in_channels_query=bottleneck,
                                       norm_cfg=norm_cfg)
        self.kmeans_query_batch_norm_retrieved_value = build_kmax_norm(norm_cfg, self.value_channels)
        self.kmeans_query_conv3_bn = KMaXConvBN(self.value_channels, in_channels_query, conv_type='1d',
                                                norm_cfg=norm_cfg, norm_init=0.0)
        if coord_conv:
            # Zero init: the centroid term starts switched off.
            self.query_coord_proj = nn.Linear(2, bottleneck, bias=False)
            nn.init.zeros_(self.query_coord_proj.weight)

    def _e_step(self, mask_logits: Tensor, prev_mask_logits: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Assignment and the logits it came from (after the residual path). The assignment is the cluster
        index ``[B, HW]`` for ``'argmax'`` (the one-hot ``A`` is never made, see :func:`kmeans_update`) and
        ``A = softmax_l(Z)`` ``[B, L, HW]`` for ``'softmax'``."""
        if self.mask_residual and prev_mask_logits is not None:
            mask_logits = mask_logits + kmax_resize(prev_mask_logits, mask_logits.shape[-2:])
        if self.assignment == 'argmax':
            return kmeans_assignment(mask_logits), mask_logits
        return mask_logits.flatten(2).softmax(dim=1), mask_logits

    def forward(self, pixel_feature: Tensor, query_feature: Tensor,
                prev_mask_logits: Optional[Tensor] = None) -> Tuple[Tensor, Dict[str, Tensor]]:
        """One layer.

        Args:
            pixel_feature: ``F`` ``[B, C_p, H, W]``.
            query_feature: ``Q`` ``[B, D, L]``.
            prev_mask_logits: ``[B, L, H', W']`` mask logits of the previous layer (used only by the CMT
                switches ``mask_residual`` / ``coord_conv``).

        Returns:
            The updated centres ``[B, D, L]`` and the predictor's outputs (``class_logits``, ``mask_logits``
            -- after the residual path when ``mask_residual`` --, ``pixel_feature``).
        """
        b, _, h, w = pixel_feature.shape
        length = query_feature.shape[-1]
        pixel_in = F.gelu(pixel_feature)
        if self.coord_conv:
            grid = coordinate_grid(h, w, pixel_in)
            pixel_in = torch.cat([pixel_in, grid.unsqueeze(0).expand(b, -1, -1, -1)], dim=1)
        pixel_space = self.pixel_conv1_bn_act(pixel_in)
        query_space = self.query_conv1_bn_act(query_feature)
        if self.coord_conv:
            query_space = query_space + self._centroid_embedding(prev_mask_logits, h, w, query_space)

        pixel_value = self.pixel_v_conv_bn(pixel_space).reshape(b, self.value_channels, h * w)
        prediction = self.predictor(mask_embeddings=query_space, class_embeddings=query_space,
                                    pixel_feature=pixel_space)
        assign, mask_logits = self._e_step(prediction['mask_logits'], prev_mask_logits)
        prediction['mask_logits'] = mask_logits
        self._record(assign, mask_logits.shape[1], h, w)

        # M-step in float32 under AMP (sums over many pixels).
        dtype = torch.float32 if pixel_value.dtype in LOW_PRECISION else pixel_value.dtype
        if self.assignment == 'argmax':  # the sum of each cluster's pixel values (segment sum)
            update = kmeans_update(mask_logits, pixel_value.to(dtype), index=assign)
        else:
            update = torch.einsum('blm,bdm->bdl', assign.to(dtype), pixel_value.to(dtype))
        if self.cross_attention_term:
            spatial = mask_logits.flatten(2).to(dtype).softmax(dim=-1)
            update = update + torch.einsum('blm,bdm->bdl', spatial, pixel_value.to(dtype))
        update = update.to(pixel_value.dtype)
        update = self.kmeans_query_conv3_bn(self.kmeans_query_batch_norm_retrieved_value(update))
        query_feature = query_feature + self.drop_path_kmeans(update)

        attn_input = query_space if self.self_attn_input == 'pre_kmeans' else self.query_conv1_bn_act(query_feature)
        qkv = self.query_qkv_conv_bn(attn_input)
        q, k, v = torch.split(qkv, [self.key_channels, self.key_channels, self.value_channels], dim=1)
        heads = self.num_heads
        attn = self.query_self_attention(q.reshape(b, heads, -1, length), k.reshape(b, heads, -1, length),
                                         v.reshape(b, heads, -1, length))
        query_feature = F.gelu(query_feature + self.drop_path_attn(self.query_conv3_bn(attn)))

        ffn = self.query_ffn_conv2_bn(self.query_ffn_conv1_bn_act(query_feature))
        query_feature = F.gelu(query_feature + self.drop_path_ffn(ffn))
        return query_feature, prediction

    def _centroid_embedding(self, prev_mask_logits: Optional[Tensor], h: int, w: int, like: Tensor) -> Tensor:
        if prev_mask_logits is None:
            return like.new_zeros(())
        ref = kmax_resize(prev_mask_logits, (h, w)).flatten(2).softmax(dim=1)  # [B, L, HW]
        xy = coordinate_grid(h, w, ref).flatten(1)  # [2, HW]
        centroid = torch.einsum('blp,cp->blc', ref, xy) / ref.sum(-1, keepdim=True).clamp(min=1e-6)
        return self.query_coord_proj(centroid).transpose(1, 2)

    def _record(self, assign: Tensor, num: int, h: int, w: int) -> None:
        if not self.is_recording_clusters:
            return
        if self.assignment == 'argmax':  # assign: the cluster index [B, HW]
            self.record_clusters(assign, (h, w), num, kind='hard', step=self.layer_index)
        else:
            self.record_clusters(assign.transpose(1, 2), (h, w), num, kind='soft', step=self.layer_index)
