# HC-FCN-32s, ResNet-101, Cityscapes (paper Appendix E.1, Table Ib: 76.1 mIoU vs FCN-32s 71.7): the per-pixel
# FCN head on the stride-32 feature of an undilated ResNet-101 (output stride 32), its class logits decoded
# through HCFormer's hierarchical clusters (level 3) instead of bilinear upsampling. mmseg's FCN recipe
# (SGD 0.01, poly, 80k iters, crop 512x1024, batch 8; the paper follows PSPNet's protocol) with
# - backbone: ResNet-101-V1c (deep stem) as in mmseg's FCN, but strides (1, 2, 2, 2) and no dilation (the
#   HC variants remove the dilated convolutions); first-block outputs for the clustering pairs. DCNv2
#   downsampling is off: the appendix does not say whether HC-FCN uses it [open].
# - no auxiliary head (mmseg's FCN has one on stage 3; the neck passes on only the top feature and the
#   clusters). Pretrained init: the base's `open-mmlab://resnet101_v1c` (downloaded at init).
_base_ = ['mmseg::fcn/fcn_r101-d8_4xb2-80k_cityscapes-512x1024.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='HCResNet',
        depth=101,
        deep_stem=True,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 2, 2),
        dilations=(1, 1, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        dcn_downsampling=False,
        first_block_outs=True),
    neck=_base_.hcformer_neck,
    decode_head=dict(type='HCFCNHead', in_index=0, loss_scale=_base_.hcformer_head.loss_scale),
    auxiliary_head=None)
