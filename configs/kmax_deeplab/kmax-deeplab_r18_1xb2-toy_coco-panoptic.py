# kMaX-DeepLab panoptic on the toy COCO panoptic data, CPU-sized: the R50 config's model shrunk
# (./_base_/kmax_deeplab.py kmax_toy_*: ResNet-18 from scratch, plain BN, pixel decoder 1/1/1/1 blocks, one k-means
# layer per stride, 32 queries, 1024 sampled pixels), the shared toy LSJ data (256^2) and the Mask2Former toy
# schedule (AdamW 2e-4, 2000 iterations). Inputs of any size (no fixed padding: the decoder does not need it).
_base_ = [
    '../_base_/datasets/toy_coco_panoptic_lsj.py', '../_base_/schedules/toy_2k_mask2former.py',
    '../_base_/toy_runtime_mmdet.py', './_base_/kmax_deeplab.py'
]

toy_classes = dict(num_things_classes=5, num_stuff_classes=4)
model = dict(
    type='MaskFormer',
    data_preprocessor=_base_.kmax_data_preprocessor,
    backbone=_base_.kmax_r18_toy_backbone,
    panoptic_head=dict(_base_.kmax_toy_head, **toy_classes),
    panoptic_fusion_head=dict(_base_.kmax_fusion_head, **toy_classes),
    train_cfg=dict(),
    test_cfg=_base_.kmax_test_cfg)
# kMaX outputs panoptic segmentation only: PQ (the toy data's box / mask AP metric is dropped)
val_evaluator = [e for e in _base_.val_evaluator if e.type == 'CocoPanopticMetric']
test_evaluator = val_evaluator
