# Semantic FPN 80k on ADE20K with a ClusTR-S backbone (paper Sec. 4.2 / Table A3; the PVT recipe):
#   AdamW lr 1e-4, weight decay 1e-4, poly decay (power 0.9, to 0) over 80k iterations, no warm-up, batch 16
#   (4 GPUs x 4); train: resize to (2048, 512) x ratio 0.5-2.0, 512 x 512 crops (cat_max_ratio 0.75), flip 0.5,
#   photometric distortion; test: short side 512 (mmseg's ADE20K pipelines, inherited unchanged).
#   FPN in_channels = the ClusTR-S widths [64, 128, 256, 512]. Stochastic depth 0.1 (not stated; the
#   ClusTR-S ImageNet rate, as PVTv2's dense-prediction backbones).
# Paper: 26.4M parameters, 48.0 mIoU.
#
# Pretrained backbone: no ClusTR checkpoint is published and nothing is downloaded: init_cfg=None (the
# backbone's own trunc-normal init). To start from ImageNet weights trained with ./clustr-s_8xb128_in1k.py
# (a classifier checkpoint, keys 'backbone.*' and 'head.*'), point the backbone at it:
#   python tools/train.py CONFIG --cfg-options model.backbone.init_cfg._delete_=True \
#       model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH.pth \
#       model.backbone.init_cfg.prefix=backbone.
# i.e. init_cfg=dict(type='Pretrained', checkpoint='PATH.pth', prefix='backbone.') (without `prefix` for a
# checkpoint that holds the backbone's own keys).
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the base names open-mmlab://resnet50_v1c; nothing may be downloaded
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
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
# 80k schedule (the base is 160k)
max_iters = 80000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000))
