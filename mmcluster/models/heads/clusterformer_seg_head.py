"""ClusterFormer decode head for mmseg's ``EncoderDecoder`` (semantic segmentation).

Paper: James C. Liang et al., "ClusterFormer: Clustering As A Universal Visual Learner", NeurIPS 2023 (ADE20K
semantic segmentation with a Mask2Former-style head). See ``docs/clusterformer.md``.

:class:`ClusterFormerSegHead` is mmseg's own ``Mask2FormerHead`` (which wraps mmdet's: per-class binary masks
from ``gt_sem_seg`` for the losses, ``einsum(softmax(cls)[..., :-1], sigmoid(mask))`` semantic logits in
``predict``) with the ClusterFormer decoder of :class:`~mmcluster.models.heads.clusterformer_head.
ClusterFormerDecoderMixin` (recurrent-clustering cross-attention, centres-from-encoder queries). Give the
losses, assigner and sampler as ``mmdet.*`` types in configs, as mmseg's Mask2Former configs do.
"""
from mmseg.models.decode_heads import Mask2FormerHead as MMSegMask2FormerHead

from mmcluster.registry import MODELS, register_module
from .clusterformer_head import ClusterFormerDecoderMixin

__all__ = ['ClusterFormerSegHead']


@register_module(MODELS)
class ClusterFormerSegHead(ClusterFormerDecoderMixin, MMSegMask2FormerHead):
    """ClusterFormer head as an mmseg decode head.

    Args: those of :class:`ClusterFormerDecoderMixin` and mmseg's ``Mask2FormerHead`` (``num_classes``,
    ``align_corners``, ``ignore_index``, and mmdet's ``Mask2FormerHead`` arguments).
    """
