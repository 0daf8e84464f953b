"""kMaX-DeepLab head for mmdet's ``MaskFormer`` detector (panoptic segmentation).

Paper: Qihang Yu et al., "k-means Mask Transformer" (ECCV 2022). Official PyTorch code ``kMaXDeepLabHead`` +
``kMaXDeepLab`` (bytedance/kmax-deeplab). ``docs/kmax_deeplab.md`` has the equations and deviations.

:class:`KMaXHead` = :class:`~mmcluster.models.necks.KMaXPixelDecoder` (backbone res2..res5 -> strides 32..4)
+ :class:`~mmcluster.models.layers.KMaXTransformerDecoder` (2 + 2 + 2 k-means layers, 128 queries, final
predictor at stride 4) + the training-only :class:`~mmcluster.models.layers.KMaXSemanticPredictor`, trained
with :class:`~mmcluster.models.losses.KMaXCriterion`. Ground truth: mmdet's ``preprocess_panoptic_gt``
(thing instances + one mask per stuff class of ``gt_sem_seg``), subsampled ``[::4, ::4]`` to the stride-4
prediction as the official data mapper does (``pan_seg_gt[::4, ::4]``; for a padded size ``4k + 1`` or a
multiple of 4 this is exactly the prediction's grid, otherwise the masks are resized by nearest neighbour).

:class:`KMaXFusionHead` is kMaX's own panoptic post-processing (official ``panoptic_inference``): class
``argmax`` of ``softmax(c)[:-1]``; masks ``softmax`` over the queries, binarised at 0.4; queries ordered by
``class_score * mean mask score``; a segment is kept if its class score beats the thing (0.7) / stuff (0.5)
threshold and it keeps more than 80 % of its pixels after earlier segments; stuff segments of one class are
merged. The output is mmdet's panoptic encoding (``label + instance_id * INSTANCE_OFFSET``; void =
``num_classes``), evaluated by mmdet's ``CocoPanopticMetric``. Use::

    model = dict(type='MaskFormer', backbone=..., panoptic_head=dict(type='KMaXHead', ...),
                 panoptic_fusion_head=dict(type='KMaXFusionHead', num_things_classes=80, num_stuff_classes=53))
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from torch import Tensor

from mmcluster.models.layers.kmax_conv_bn import KMAX_NORM_CFG
from mmcluster.models.layers.kmax_semantic_predictor import KMaXSemanticPredictor
from mmcluster.models.layers.kmax_transformer_decoder import KMaXTransformerDecoder
from mmcluster.models.layers.kmeans_cross_attention import kmax_resize
from mmcluster.models.losses.kmax_criterion import KMaXCriterion
from mmcluster.models.necks.kmax_pixel_decoder import KMaXPixelDecoder
from mmcluster.models.utils.input_check import check_finite_features
from mmcluster.registry import MODELS, register_module

__all__ = ['KMaXHead', 'KMaXFusionHead', 'kmax_panoptic_inference', 'subsample_to']

KMAX_TEST_CFG = dict(pixel_confidence_threshold=0.4, class_threshold_thing=0.7, class_threshold_stuff=0.5,
                     overlap_threshold=0.8, reorder_class_weight=1.0, reorder_mask_weight=1.0)


def subsample_to(x: Tensor, size: Sequence[int], stride: int = 4) -> Tensor:
    """``x[..., ::stride, ::stride]`` (official), nearest-resized when that is not ``size``."""
    y = x[..., ::stride, ::stride]
    if tuple(y.shape[-2:]) != tuple(size):
        y = F.interpolate(x.float().unsqueeze(0), size=tuple(size), mode='nearest')[0].to(x.dtype)
    return y


@register_module(MODELS)
class KMaXHead(BaseModule):
    """kMaX-DeepLab head (see the module docstring).

    Args:
        num_things_classes: thing classes. Defaults to 80 (COCO).
        num_stuff_classes: stuff classes. Defaults to 53 (COCO).
        in_channels: backbone channels, finest first. Defaults to ResNet-50's.
        num_queries: cluster centres ``L``. Defaults to 128.
        pixel_decoder: extra :class:`KMaXPixelDecoder` arguments.
        transformer_decoder: extra :class:`KMaXTransformerDecoder` arguments (``dec_layers``,
            ``drop_path_rate`` (COCO: 0.2), ``layer_cfg`` for the CMT-DeepLab switches).
        aux_semantic_head: extra :class:`KMaXSemanticPredictor` arguments, ``None`` to drop the head and its loss.
        criterion: extra :class:`KMaXCriterion` arguments (loss weights, sampling).
        mask_stride: stride of the predicted masks. Defaults to 4.
        norm_cfg: norm config of every module. Defaults to BN(eps 1e-3, momentum 0.01); SyncBN in full configs.
        train_cfg / test_cfg: set by the detector; ``test_cfg`` is read by :class:`KMaXFusionHead`.
        init_cfg: mmengine init config.
    """

    def __init__(self, num_things_classes: int = 80, num_stuff_classes: int = 53,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048), num_queries: int = 128,
                 pixel_decoder: Optional[dict] = None, transformer_decoder: Optional[dict] = None,
                 aux_semantic_head: Optional[dict] = {}, criterion: Optional[dict] = None, mask_stride: int = 4,
                 norm_cfg: Optional[dict] = KMAX_NORM_CFG, train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.mask_stride = mask_stride
        self.in_channels = list(in_channels)  # the backbone's out_channels (build-time check, channel_check.py)
        self.pixel_decoder = KMaXPixelDecoder(in_channels=in_channels, norm_cfg=norm_cfg, **(pixel_decoder or {}))
        dec_channels = self.pixel_decoder.out_channels  # coarsest first
        self.transformer_decoder = KMaXTransformerDecoder(
            self.num_classes, in_channels=dec_channels, num_queries=num_queries, norm_cfg=norm_cfg,
            **(transformer_decoder or {}))
        self.aux_semantic_head = None
        if aux_semantic_head is not None:
            self.aux_semantic_head = KMaXSemanticPredictor(
                in_channels[-1], in_channels[1], in_channels[0], num_classes=self.num_classes + 1,
                norm_cfg=norm_cfg, **aux_semantic_head)
        crit = dict(criterion or {})
        if self.aux_semantic_head is None:
            crit['aux_semantic_loss'] = None
        self.criterion = KMaXCriterion(self.num_classes, **crit)
        self.train_cfg, self.test_cfg = train_cfg, test_cfg

    def forward(self, x: Sequence[Tensor], batch_data_samples=None) -> Dict:
        """Decoder outputs (see :class:`KMaXTransformerDecoder`) + ``aux_semantic_pred`` in training."""
        check_finite_features(x, type(self).__name__)  # the kMaX configs use the toolkits' ResNet / ConvNeXt
        panoptic, semantic, multi_scale = self.pixel_decoder(x)
        out = self.transformer_decoder(multi_scale, panoptic)
        if self.training and self.aux_semantic_head is not None:
            out['aux_semantic_pred'] = self.aux_semantic_head(*semantic)
        return out

    def _targets(self, batch_data_samples, size) -> Tuple[List[Tensor], List[Tensor], Tensor]:
        from mmdet.models.utils import preprocess_panoptic_gt
        labels, masks, semantic = [], [], []
        for sample in batch_data_samples:
            gt_sem = sample.gt_sem_seg.sem_seg if 'gt_sem_seg' in sample else None
            inst = sample.gt_instances
            if gt_sem is None:
                lab, msk = inst.labels, inst.masks
                msk = msk.to_tensor(torch.bool, lab.device) if hasattr(msk, 'to_tensor') else msk.bool()
            else:
                lab, msk = preprocess_panoptic_gt(inst.labels, inst.masks, gt_sem, self.num_things_classes,
                                                  self.num_stuff_classes)
            msk = subsample_to(msk.to(torch.uint8), size, self.mask_stride).float()
            labels.append(lab.long())
            masks.append(msk)
            # semantic labels of the official aux loss: the class of each labelled pixel, void elsewhere
            sem = torch.full(tuple(size), self.num_classes, dtype=torch.long, device=msk.device)
            for lb, m in zip(lab, msk):
                sem[m > 0] = int(lb)
            semantic.append(sem)
        return labels, masks, torch.stack(semantic)

    def loss(self, x: Sequence[Tensor], batch_data_samples) -> Dict[str, Tensor]:
        out = self(x, batch_data_samples)
        labels, masks, semantic = self._targets(batch_data_samples, out['pred_masks'].shape[-2:])
        if 'aux_semantic_pred' in out:
            out['aux_semantic_pred'] = out['aux_semantic_pred'].float()
        return self.criterion(out, labels, masks, semantic)

    def predict(self, x: Sequence[Tensor], batch_data_samples) -> Tuple[Tensor, Tensor]:
        """Class logits ``[B, L, K + 1]`` and mask logits resized to the padded input ``[B, L, H, W]``."""
        out = self(x, batch_data_samples)
        size = batch_data_samples[0].metainfo['batch_input_shape']
        return out['pred_logits'], kmax_resize(out['pred_masks'], size)


@torch.no_grad()
def kmax_panoptic_inference(class_logits: Tensor, mask_logits: Tensor, num_things_classes: int,
                            num_classes: int, test_cfg: Optional[dict] = None) -> Tensor:
    """kMaX panoptic post-processing of one image: ``class_logits [L, K + 1]``, ``mask_logits [L, H, W]`` ->
    ``[H, W]`` mmdet panoptic ids (``label + instance_id * INSTANCE_OFFSET``, void = ``num_classes``)."""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    cfg = dict(KMAX_TEST_CFG, **(test_cfg or {}))
    cls_scores, cls_labels = class_logits.softmax(-1)[:, :-1].max(-1)
    mask_scores = mask_logits.softmax(0)
    binary = mask_scores > cfg['pixel_confidence_threshold']
    area = binary.flatten(1).sum(1)
    mean_score = (mask_scores * binary).flatten(1).sum(1) / area.clamp(min=1)
    order = torch.argsort(cls_scores ** cfg['reorder_class_weight'] * mean_score ** cfg['reorder_mask_weight'],
                          descending=True)
    panoptic = torch.full(mask_logits.shape[1:], num_classes, dtype=torch.long, device=mask_logits.device)
    taken = torch.zeros(mask_logits.shape[1:], dtype=torch.bool, device=mask_logits.device)
    instance_id = 0
    for idx in order.tolist():
        label, score = int(cls_labels[idx]), float(cls_scores[idx])
        is_thing = label < num_things_classes
        if score <= (cfg['class_threshold_thing'] if is_thing else cfg['class_threshold_stuff']):
            continue
        new = binary[idx] & ~taken
        if not float(new.sum()) > float(area[idx]) * cfg['overlap_threshold']:
            continue
        taken |= new
        if is_thing:
            instance_id += 1
            panoptic[new] = label + instance_id * INSTANCE_OFFSET
        else:
            panoptic[new] = label  # stuff of one class is one segment
    return panoptic


@register_module(MODELS)
class KMaXFusionHead(BaseModule):
    """kMaX panoptic post-processing for mmdet's ``MaskFormer`` detector (see the module docstring).

    Args:
        num_things_classes: defaults to 80.
        num_stuff_classes: defaults to 53.
        test_cfg: overrides of ``pixel_confidence_threshold`` (0.4), ``class_threshold_thing`` (0.7),
            ``class_threshold_stuff`` (0.5), ``overlap_threshold`` (0.8), ``reorder_class_weight`` /
            ``reorder_mask_weight`` (1.0) -- the official COCO values (ADE20K: 0.4 / 0.4 thing / stuff).
        init_cfg: unused.
    """

    def __init__(self, num_things_classes: int = 80, num_stuff_classes: int = 53, test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_classes = num_things_classes + num_stuff_classes
        cfg = dict(test_cfg or {})
        unknown = set(cfg) - set(KMAX_TEST_CFG) - {'panoptic_on', 'semantic_on', 'instance_on', 'max_per_image',
                                                   'iou_thr', 'filter_low_score'}
        if unknown:
            raise ValueError(f'unknown test_cfg keys {sorted(unknown)}; valid: {sorted(KMAX_TEST_CFG)}')
        self.test_cfg = {k: cfg.get(k, v) for k, v in KMAX_TEST_CFG.items()}

    def loss(self, **kwargs) -> Dict:
        return dict()

    def predict(self, mask_cls_results: Tensor, mask_pred_results: Tensor, batch_data_samples,
                rescale: bool = False, **kwargs) -> List[dict]:
        results = []
        for cls, masks, sample in zip(mask_cls_results, mask_pred_results, batch_data_samples):
            meta = sample.metainfo
            align_corners = int(masks.shape[-1]) % 2 == 1
            h, w = meta['img_shape'][:2]
            masks = masks[:, :h, :w]
            if rescale:
                masks = F.interpolate(masks[None], size=tuple(meta['ori_shape'][:2]), mode='bilinear',
                                      align_corners=align_corners)[0]
            pan = kmax_panoptic_inference(cls, masks, self.num_things_classes, self.num_classes, self.test_cfg)
            results.append(dict(pan_results=PixelData(sem_seg=pan[None])))
        return results
