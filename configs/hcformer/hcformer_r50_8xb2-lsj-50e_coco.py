# HCFormer, ResNet-50, COCO instance segmentation (paper Table 2: AP 37.4, 38M params). mmdet's Mask2Former
# R50 instance recipe with the HCFormer backbone / neck / head of `hcformer_r50_8xb2-lsj-50e_coco-panoptic.py`
# (see there for the choices, the pretrained init and the deviations).
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=dict(type='HCResNet', dcn_downsampling=True, first_block_outs=True),
    neck=dict(
        type='HCFormerNeck',
        in_channels=[256, 512, 1024, 2048],
        level=3,
        embed_dims=128,
        init_scale=0.1,
        coarse_inputs='first_block'),
    panoptic_head=dict(
        type='HCFormerHead',
        in_channels=2048,
        pixel_decoder=None,
        num_transformer_feat_level=1,
        transformer_decoder=dict(num_layers=8),
        reg_weight=0.1,
        reg_mode='abs_of_sum'))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'neck': dict(lr_mult=0.1, decay_mult=1.0)}))
