# Mask R-CNN + FPN 1x on COCO with a ClusTR-S backbone (paper Sec. 4.3 / Table A4; the PVTv2 recipe):
#   AdamW lr 2e-4, weight decay 1e-4, 12 epochs with lr x0.1 after epochs 8 and 11, 500-iteration linear
#   warm-up, batch 16 (8 GPUs x 2), images resized to (1333, 800) keeping the ratio, flip 0.5, padded to a
#   multiple of 32 (all inherited from mmdet's mask-rcnn_r50_fpn_1x_coco); FPN in_channels = the ClusTR-S
#   widths [64, 128, 256, 512]. Stochastic depth 0.1 (not stated; the ClusTR-S ImageNet rate).
# Paper: 42.3M parameters, box AP 47.0, mask AP 42.5.
#
# Pretrained backbone: no ClusTR checkpoint is published and nothing is downloaded: init_cfg=None (the
# backbone's own trunc-normal init). To start from ImageNet weights trained with ./clustr-s_8xb128_in1k.py
# (a classifier checkpoint, keys 'backbone.*' and 'head.*'), point the backbone at it:
#   python tools/train.py CONFIG --cfg-options model.backbone.init_cfg._delete_=True \
#       model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH.pth \
#       model.backbone.init_cfg.prefix=backbone.
# i.e. init_cfg=dict(type='Pretrained', checkpoint='PATH.pth', prefix='backbone.') (without `prefix` for a
# checkpoint that holds the backbone's own keys).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusTR',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
