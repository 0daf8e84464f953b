# HCFormer, Swin-S, COCO instance segmentation (no Swin-S instance result in the paper). mmdet's Mask2Former
# Swin-S instance recipe with HCFormer's neck and head; see
# `hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py` for the choices and the deviation.
_base_ = 'mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py'
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
