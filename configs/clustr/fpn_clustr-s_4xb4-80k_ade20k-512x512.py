# Semantic FPN 80k on ADE20K with a ClusTR-S backbone (paper Sec. 4.2 / Table A3; the PVT recipe):
#   AdamW lr 1e-4, weight decay 1e-4, poly decay (power 0.9, to 0) over 80k iterations, no warm-up, batch 16
#   (4 GPUs x 4); train: resize to (2048, 512) x ratio 0.5-2.0, 512 x 512 crops (cat_max_ratio 0.75), flip 0.5,
#   photometric distortion; test: short side 512 (mmseg's ADE20K pipelines, inherited unchanged).
#   FPN in_channels = the ClusTR-S widths [64, 128, 256, 512]. Stochastic depth 0.1 (not stated; the
#   ClusTR-S ImageNet rate, as PVTv2's dense-prediction backbones).
# Paper: 26.4M parameters, 48.0 mIoU.
# Pretrained backbone: see ./_base_/clustr_dense.py.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/semantic-fpn_adamw_80k.py', './_base_/clustr_dense.py'
]

model = dict(
    pretrained=None,  # the base names open-mmlab://resnet50_v1c; nothing may be downloaded
    data_preprocessor=dict(size=(512, 512)),
    backbone=_base_.clustr_backbone,
    neck=dict(in_channels=_base_.clustr_widths),
    decode_head=dict(num_classes=150))
