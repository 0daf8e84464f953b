# HCFormer semantic segmentation on the toy ADE20K-layout data, CPU-sized: the real config
# (./hcformer_r50_8xb2-160k_ade20k-512x512.py: mmseg's Mask2Former + HCFormer) shrunk the way the toy baselines
# shrink theirs: HCResNet-18 from scratch (`init_cfg=None`: no download; no DCNv2 downsampling on the CPU: mmcv's
# CPU kernel about doubles the backbone's cost), plain BN (no SyncBN on one CPU process), the toy decoder of
# ../_base_/models/mask2former_toy_head.py (feat 128, 30 queries, 3 decoder layers), 2048 sampled points; the toy
# ADE20K data (256^2 crops, 8 images per batch) and Mask2Former's optimiser at the toy lr 2e-4 (clip 1.0) with
# poly decay over the 2000-iteration toy schedule.
_base_ = [
    '../_base_/models/mask2former_r50_mmseg.py', '../_base_/datasets/toy_ade20k.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmseg.py', './_base_/hcformer.py',
    '../_base_/models/mask2former_toy_head.py'
]
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(_base_.hcformer_r18_toy_backbone, depth=18, norm_cfg=norm_cfg, norm_eval=False),
    neck=_base_.hcformer_r18_toy_neck,
    decode_head=dict(
        _base_.hcformer_seg_head, **_base_.mask2former_toy_head, in_channels=512, train_cfg=dict(num_points=2048)))
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=2000, by_epoch=False)]
