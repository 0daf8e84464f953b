# UperNet 160k on ADE20K with a ClusTR-S backbone (paper Sec. 4.2 / Table A3; the Swin recipe):
#   AdamW lr 6e-5 (betas 0.9 / 0.999), weight decay 0.01 (not on norm layers, as mmseg's Swin UperNet configs),
#   1500 linear warm-up iterations, then poly decay (power 1.0, to 0) until 160k iterations, batch 16 (4 GPUs x 4);
#   mmseg's ADE20K pipelines (2048 x 512, ratio 0.5-2.0, 512 crops, flip; test short side 512).
#   UPerHead in_channels = the ClusTR-S widths [64, 128, 256, 512], auxiliary FCN head on stage 3 (256 channels)
#   with loss weight 0.4 (inherited). Stochastic depth 0.1 (not stated; the ClusTR-S ImageNet rate).
# Paper: 52.5M parameters, 49.6 mIoU.
# Pretrained backbone: see ./_base_/clustr_dense.py.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', './_base_/clustr_dense.py']

model = dict(
    pretrained=None,  # the base names open-mmlab://resnet50_v1c; nothing may be downloaded
    backbone=_base_.clustr_backbone,
    decode_head=dict(in_channels=_base_.clustr_widths),
    auxiliary_head=dict(in_channels=_base_.clustr_widths[2]))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]
