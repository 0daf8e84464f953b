# Mask R-CNN + FPN with a Context Clusters CoC-Tiny/25 backbone on the toy COCO instance data, CPU-sized: the full
# recipe (./mask-rcnn_coc-small-4_fpn_8xb2-1x_coco.py: mmdet's Mask R-CNN, AdamW lr 2e-4 wd 1e-4, pad to 32) in
# miniature: CoC-Tiny with 5 x 5 centres per region (the paper's best dense variant is /25), the toy-size Mask
# R-CNN heads (128 channels), the toy instance data (short side ~256 px, 5 thing classes, 2 images per batch) and
# the 2000-iteration toy step schedule.
_base_ = [
    '../_base_/models/mask-rcnn_fpn_toy.py', '../_base_/datasets/toy_coco_instance.py',
    '../_base_/schedules/toy_2k_adamw-step.py', '../_base_/toy_runtime_mmdet.py', './_base_/coc_dense.py'
]

model = dict(
    backbone=dict(_base_.coc_backbone, arch='tiny', proposal=5),
    neck=dict(in_channels=_base_.coc_widths['tiny']))
