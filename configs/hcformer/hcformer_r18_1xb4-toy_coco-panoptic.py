# HCFormer panoptic on the toy COCO panoptic data (tools/make_toy_data.py), CPU-sized: the toy Mask2Former
# baseline (ResNet-18, 256² LSJ, feat 128, 30 queries, 3 decoder layers, same schedule) with its pixel
# decoder replaced by HCFormer's clustering: HCResNet-18 (first-block outputs as the coarse maps),
# HCFormerNeck (level 3), HCFormerHead (masks decoded through the clusters).
# No DCNv2 downsampling here (`dcn_downsampling=False`, paper Table II(b)): mmcv's CPU kernel makes the
# ResNet-18 forward + backward about twice as slow; the R50 configs use it.
# The backbone starts from scratch (`init_cfg=None`, inherited from the baseline): the real configs'
# `torchvision://resnet50` would be a download.
_base_ = '../baselines/mask2former_r18_1xb4-toy_coco-panoptic.py'

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
