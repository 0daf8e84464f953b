# HCFormer, ResNet-50, COCO panoptic (paper Table 1: PQ 47.7, 38M params, 87 GFLOPs; Appendix D.1).
# mmdet's Mask2Former R50 panoptic recipe (LSJ 1024, AdamW 1e-4, wd 0.05, backbone lr x0.1, clip 0.01,
# batch 16, 368,750 iters with x0.1 steps at 327,778 / 355,092 = the official HCFormer config values; the
# paper's text says 0.9 / 0.95) with the pixel decoder removed:
# - backbone: mmdet ResNet-50 + DCNv2 downsampling in the first block of stages 2-4 (Appendix E.2) and the
#   first-block outputs that the official code clusters onto (HCResNet);
# - neck: three clustering modules (hierarchical level 3, C_F 128, s init 0.1);
# - head: Mask2Former's masked-attention decoder with 8 layers on the stride-32 feature, masks decoded
#   through the clusters to stride 4; L1 regulariser on the scales (weight 0.1, |sum s| as in the code).
# Pretrained init: the backbone keeps the base config's `torchvision://resnet50` (downloaded at init; the
# DCN main weights load from it, the new offset convs start at zero). FrozenBN as in the official code
# (BN requires_grad False, norm_eval True: the base's setting).
# Deviations: no AMP (the official training used it; add `optim_wrapper.type='AmpOptimWrapper'` on GPUs).
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'
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
        transformer_decoder=dict(num_layers=8),  # + the initial prediction = 9 (config DEC_LAYERS=9)
        reg_weight=0.1,
        reg_mode='abs_of_sum'))

# the official code keeps the clustering modules (and HCFormer+'s encoder) inside the backbone: same lr x0.1
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'neck': dict(lr_mult=0.1, decay_mult=1.0)}))
