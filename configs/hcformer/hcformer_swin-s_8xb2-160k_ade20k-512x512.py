# HCFormer, Swin-S, ADE20K semantic segmentation (paper Table 3a: 48.8 mIoU, 56 GFLOPs). mmseg's
# Mask2Former Swin-S ADE20K recipe (its pretrained Swin-S URL is kept: downloaded at init) with HCFormer's
# neck and head; the official HCSwin pairing (pre-norm stage output -> PatchMerging output), as in the COCO
# Swin-S config.
_base_ = ['mmseg::mask2former/mask2former_swin-s_8xb2-160k_ade20k-512x512.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=_base_.hcformer_swin_backbone,
    neck=_base_.hcformer_swin_s_neck,
    decode_head=dict(_base_.hcformer_seg_head, in_channels=768))
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
