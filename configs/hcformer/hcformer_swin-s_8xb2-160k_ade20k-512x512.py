# HCFormer, Swin-S, ADE20K semantic segmentation (paper Table 3a: 48.8 mIoU, 56 GFLOPs). mmseg's
# Mask2Former Swin-S ADE20K recipe (its pretrained Swin-S URL is kept: downloaded at init) with HCFormer's
# neck and head. Deviation as in the COCO Swin-S config: each pair's coarse map is the next stage's output
# (the official HCSwin uses the PatchMerging output).
_base_ = 'mmseg::mask2former/mask2former_swin-s_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='HCFormerNeck',
        in_channels=[96, 192, 384, 768],
        level=3,
        embed_dims=128,
        init_scale=0.1,
        coarse_inputs='next_stage'),
    decode_head=dict(
        type='HCFormerSegHead',
        in_channels=768,
        pixel_decoder=None,
        num_transformer_feat_level=1,
        transformer_decoder=dict(num_layers=8),
        reg_weight=0.1,
        reg_mode='abs_of_sum'))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'neck': dict(lr_mult=0.1, decay_mult=1.0)}))
