# HCFormer, ResNet-50, ADE20K semantic segmentation (paper Table 3a: 45.5 mIoU, 29 GFLOPs; Appendix D.2).
# mmseg's Mask2Former R50 ADE20K recipe (crop 512, AdamW 1e-4, wd 0.05, backbone lr x0.1, poly LR, 160k
# iters, batch 16, scale jitter 0.5-2.0, flip, photometric distortion) with the pixel decoder removed:
# HCResNet-50 (DCNv2 downsampling + first-block outputs), HCFormerNeck (level 3), HCFormerSegHead (8 decoder
# layers, 100 queries, masks decoded through the clusters). Pretrained init: the base's
# `torchvision://resnet50` (downloaded at init). FrozenBN as in the official code (norm_eval=True; mmseg's
# base keeps updating the BN statistics).
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=dict(_base_.hcformer_backbone, norm_eval=True), neck=_base_.hcformer_neck,
    decode_head=_base_.hcformer_seg_head)
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
