"""kMaX-DeepLab as an mmseg decode head (semantic segmentation, ``EncoderDecoder``).

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022). :class:`KMaXSegHead` is
:class:`~mmcluster.models.heads.KMaXHead` with mmseg's decode-head interface:

* ``loss(x, data_samples, train_cfg)``: each ``gt_sem_seg`` becomes one binary mask per present class
  (``ignore_index`` dropped), subsampled ``[::4, ::4]`` to the stride-4 prediction, then the kMaX losses
  (PQ-style, mask-ID CE, instance discrimination, auxiliary semantic; deep supervision);
* ``predict(x, img_metas, test_cfg)``: the official ``semantic_inference``,
  ``einsum(softmax(c)[..., :-1], softmax_L(Z))``, at the padded input size (mmseg crops and resizes).
"""
from typing import Dict, List, Optional

import torch
from torch import Tensor

from mmcluster.models.layers.kmeans_cross_attention import kmax_resize
from mmcluster.registry import MODELS, register_module
from .hcformer_seg_head import sem_seg_to_instances
from .kmax_head import KMaXHead, subsample_to

__all__ = ['KMaXSegHead']


@register_module(MODELS)
class KMaXSegHead(KMaXHead):
    """kMaX-DeepLab decode head for mmseg.

    Args:
        num_classes: semantic classes. Defaults to 150 (ADE20K).
        align_corners: read by ``EncoderDecoder`` for its final resize. Defaults to False.
        ignore_index: ignored label. Defaults to 255.
        **kwargs: :class:`KMaXHead` arguments (``in_channels``, ``num_queries``, ``pixel_decoder``, ...).
    """

    def __init__(self, num_classes: int = 150, align_corners: bool = False, ignore_index: int = 255,
                 **kwargs) -> None:
        kwargs.update(num_things_classes=num_classes, num_stuff_classes=0)
        super().__init__(**kwargs)
        self.align_corners = align_corners
        self.ignore_index = ignore_index
        self.out_channels = num_classes

    def loss(self, x, batch_data_samples, train_cfg: Optional[dict] = None) -> Dict[str, Tensor]:
        out = self(x, batch_data_samples)
        size = out['pred_masks'].shape[-2:]
        gt_instances, _ = sem_seg_to_instances(batch_data_samples, self.ignore_index)
        labels, masks, semantic = [], [], []
        for inst in gt_instances:
            msk = subsample_to(inst.masks.to(torch.uint8), size, self.mask_stride).float()
            sem = torch.full(tuple(size), self.num_classes, dtype=torch.long, device=msk.device)
            for lb, m in zip(inst.labels, msk):
                sem[m > 0] = int(lb)
            labels.append(inst.labels.long())
            masks.append(msk)
            semantic.append(sem)
        if 'aux_semantic_pred' in out:
            out['aux_semantic_pred'] = out['aux_semantic_pred'].float()
        return self.criterion(out, labels, masks, torch.stack(semantic))

    def predict(self, x, batch_img_metas: List[dict], test_cfg: Optional[dict] = None) -> Tensor:
        """Semantic scores ``[B, K, H_pad, W_pad]``."""
        out = self(x)
        meta = batch_img_metas[0]
        size = meta['pad_shape'] if 'pad_shape' in meta else meta['img_shape']
        masks = kmax_resize(out['pred_masks'], tuple(size[:2])).softmax(1)
        return torch.einsum('blc,blhw->bchw', out['pred_logits'].softmax(-1)[..., :-1], masks)
