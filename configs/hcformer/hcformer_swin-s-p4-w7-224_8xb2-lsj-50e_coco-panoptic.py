# HCFormer, Swin-S (ImageNet-1K), COCO panoptic (paper Table 1: PQ 50.9, 62M params, 170 GFLOPs).
# mmdet's Mask2Former Swin-S panoptic recipe (its pretrained Swin-S checkpoint URL is kept: downloaded at
# init) with the pixel decoder replaced by HCFormer's clustering neck and head. No DCN for Swin (paper).
# Deviation: the official HCSwin clusters each stage's output onto its PatchMerging output (before the next
# stage's blocks); mmdet's SwinTransformer only exposes stage outputs, so the coarse map of each pair is the
# next stage's output (`coarse_inputs='next_stage'`).
_base_ = 'mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    neck=dict(
        type='HCFormerNeck',
        in_channels=[96, 192, 384, 768],
        level=3,
        embed_dims=128,
        init_scale=0.1,
        coarse_inputs='next_stage'),
    panoptic_head=dict(
        type='HCFormerHead',
        in_channels=768,
        pixel_decoder=None,
        num_transformer_feat_level=1,
        transformer_decoder=dict(num_layers=8),
        reg_weight=0.1,
        reg_mode='abs_of_sum'))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'neck': dict(lr_mult=0.1, decay_mult=1.0)}))
