# Mask R-CNN + FPN with a ClusTR-T backbone on the toy COCO instance data, CPU-sized: the full recipe
# (./mask-rcnn_clustr-s_fpn_8xb2-1x_coco.py) in miniature: ClusTR-T (all four stages out), the toy-size Mask R-CNN
# heads (128 channels), the toy instance data (5 thing classes, 2 images per batch), the 2000-iteration toy step
# schedule. Tested at short side 192 as the ClusTR RetinaNet toy (DPC-kNN is quadratic in the stage-1 tokens).
_base_ = [
    '../_base_/models/mask-rcnn_fpn_toy.py', '../_base_/datasets/toy_coco_instance.py',
    '../_base_/schedules/toy_2k_adamw-step.py', '../_base_/toy_runtime_mmdet.py', './_base_/clustr_dense.py'
]

model = dict(
    backbone=dict(_base_.clustr_backbone, arch='tiny', drop_path_rate=0.),
    neck=dict(in_channels=_base_.clustr_widths))

# the toy test pipeline with the images resized to (320, 192)
test_pipeline = [dict(t, scale=(320, 192)) if t.type == 'Resize' else t for t in _base_.test_pipeline]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
