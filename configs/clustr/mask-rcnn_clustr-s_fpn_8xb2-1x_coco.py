# Mask R-CNN + FPN 1x on COCO with a ClusTR-S backbone (paper Sec. 4.3 / Table A4; the PVTv2 recipe):
#   AdamW lr 2e-4, weight decay 1e-4, 12 epochs with lr x0.1 after epochs 8 and 11, 500-iteration linear
#   warm-up, batch 16 (8 GPUs x 2), images resized to (1333, 800) keeping the ratio, flip 0.5, padded to a
#   multiple of 32 (all inherited from mmdet's mask-rcnn_r50_fpn_1x_coco); FPN in_channels = the ClusTR-S
#   widths [64, 128, 256, 512]. Stochastic depth 0.1 (not stated; the ClusTR-S ImageNet rate).
# Paper: 42.3M parameters, box AP 47.0, mask AP 42.5.
# Pretrained backbone: see ./_base_/clustr_dense.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/clustr_dense.py']

model = dict(backbone=_base_.clustr_backbone, neck=dict(in_channels=_base_.clustr_widths))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
