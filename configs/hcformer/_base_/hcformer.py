# HCFormer's parts (Clustering as Attention, arXiv 2205.09949; docs/hcformer.md), merged into a Mask2Former config
# (mmdet or mmseg) by the configs of this folder: the pixel decoder is removed and the masks are decoded through
# hierarchical clusters.
# - backbone: mmdet's ResNet + DCNv2 downsampling in the first block of stages 2-4 (paper Appendix E.2) and the
#   first-block outputs that the official code clusters onto (HCResNet);
# - neck: three clustering modules (hierarchical level 3, C_F 128, scale s initialised to 0.1);
# - head: Mask2Former's masked-attention decoder with 8 layers (+ the initial prediction = the official 9) on the
#   stride-32 feature, masks decoded through the clusters to stride 4; L1 regulariser on the scales (weight 0.1,
#   |sum s| as in the official code);
# - optimiser: the official code keeps the clustering modules inside the backbone, so they get its lr x0.1.
# Usage: `model = dict(backbone=_base_.hcformer_backbone, neck=_base_.hcformer_neck,
#                      panoptic_head=_base_.hcformer_panoptic_head)` (mmdet; mmseg: decode_head=hcformer_seg_head),
#        `optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)`.
hcformer_backbone = dict(type='HCResNet', dcn_downsampling=True, first_block_outs=True)
hcformer_neck = dict(
    type='HCFormerNeck',
    in_channels=[256, 512, 1024, 2048],
    level=3,
    embed_dims=128,
    init_scale=0.1,
    coarse_inputs='first_block')
hcformer_head = dict(
    in_channels=2048,
    pixel_decoder=None,
    num_transformer_feat_level=1,
    transformer_decoder=dict(num_layers=8),
    reg_weight=0.1,
    reg_mode='abs_of_sum')
hcformer_paramwise_cfg = dict(custom_keys={'neck': dict(lr_mult=0.1, decay_mult=1.0)})
hcformer_panoptic_head = dict(hcformer_head, type='HCFormerHead')  # mmdet's Mask2Former: panoptic_head
hcformer_seg_head = dict(hcformer_head, type='HCFormerSegHead')  # mmseg's Mask2Former: decode_head

# Swin-S (mmdet's / mmseg's SwinTransformer): no DCN (paper). Deviation: the official HCSwin clusters each stage's
# output onto its PatchMerging output (before the next stage's blocks); mmdet's SwinTransformer only exposes stage
# outputs, so the coarse map of each pair is the next stage's output (`coarse_inputs='next_stage'`).
hcformer_swin_s_neck = dict(hcformer_neck, in_channels=[96, 192, 384, 768], coarse_inputs='next_stage')

# The CPU toy variant (configs *_toy_*): ResNet-18 without DCNv2 downsampling (mmcv's CPU kernel makes the
# ResNet-18 forward + backward about twice as slow; paper Table II(b)), from scratch (`init_cfg=None`: no download).
hcformer_r18_toy_backbone = dict(hcformer_backbone, dcn_downsampling=False, init_cfg=None)
hcformer_r18_toy_neck = dict(hcformer_neck, in_channels=[64, 128, 256, 512])
