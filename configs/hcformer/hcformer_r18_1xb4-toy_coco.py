# HCFormer instance segmentation on the toy COCO instances data, CPU-sized: the toy Mask2Former instance
# baseline with HCFormer's backbone hooks (no DCNv2 on the CPU), neck and head (see
# `hcformer_r18_1xb4-toy_coco-panoptic.py`).
_base_ = '../baselines/mask2former_r18_1xb4-toy_coco.py'

model = dict(
    backbone=dict(type='HCResNet', dcn_downsampling=False, first_block_outs=True, init_cfg=None),
    neck=dict(
        type='HCFormerNeck',
        in_channels=[64, 128, 256, 512],
        level=3,
        embed_dims=128,
        init_scale=0.1,
        coarse_inputs='first_block'),
    panoptic_head=dict(
        type='HCFormerHead',
        in_channels=512,
        pixel_decoder=None,
        num_transformer_feat_level=1,
        reg_weight=0.1,
        reg_mode='abs_of_sum'))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'neck': dict(lr_mult=0.1, decay_mult=1.0)}))
