# HCFormer's parts (Clustering as Attention, arXiv 2205.09949; docs/hcformer.md), merged into a Mask2Former config
# (mmdet or mmseg) by the configs of this folder: the pixel decoder is removed and the masks are decoded through
# hierarchical clusters.
# - backbone: mmdet's ResNet + DCNv2 downsampling in the first block of stages 2-4 (paper Appendix E.2) and the
#   first-block outputs that the official code clusters onto (HCResNet);
# - neck: three clustering modules (hierarchical level 3, C_F 128, scale s initialised to 0.1);
# - head: Mask2Former's masked-attention decoder with 8 layers (+ the initial prediction = the official 9) on the
#   stride-32 feature, masks decoded through the clusters to stride 4; L1 regulariser on the scales
#   (`loss_scale`: HCScaleLoss, weight 0.1, |sum s| as in the official code);
# - optimiser: the official code keeps the clustering modules (and HCFormer+'s encoder) inside the backbone, so
#   they get its lr x0.1; like every norm layer of the official model, their norms get no weight decay (a custom
#   key would otherwise override the toolkit config's `norm_decay_mult=0`).
# Usage: `model = dict(backbone=_base_.hcformer_backbone, neck=_base_.hcformer_neck,
#                      panoptic_head=_base_.hcformer_panoptic_head)` (mmdet; mmseg: decode_head=hcformer_seg_head),
#        `optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)`; whole `model` overrides for the
#        Swin-S and toy configs below.
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
    loss_scale=dict(type='HCScaleLoss', loss_weight=0.1, mode='abs_of_sum'))
# mmengine tries the longest matching key first: the neck's norms get the backbone lr and no decay (official)
hc_norm = dict(lr_mult=0.1, decay_mult=0.0)
hcformer_paramwise_cfg = dict(
    custom_keys={
        'neck': dict(lr_mult=0.1, decay_mult=1.0),
        'fine_norm': hc_norm,
        'coarse_norm': hc_norm,
        'neck.input_proj.1': hc_norm,  # HCFormer+: the GroupNorm after the input projection
        **{f'neck.encoder.layers.{i}.norms': hc_norm for i in range(6)}
    },
    norm_decay_mult=0.0)
hcformer_panoptic_head = dict(hcformer_head, type='HCFormerHead')  # mmdet's Mask2Former: panoptic_head
hcformer_seg_head = dict(hcformer_head, type='HCFormerSegHead')  # mmseg's Mask2Former: decode_head

# HCFormer+: a 6-layer post-norm transformer encoder on the stride-32 feature (d 256, 8 heads, FFN 2048, dropout
# 0.1, 1x1 conv + GN(32) input projection, sine positional encoding); the head then reads 256 channels.
hcformerplus_encoder = dict(
    num_layers=6,
    layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.1, batch_first=True),
        ffn_cfg=dict(embed_dims=256, feedforward_channels=2048, num_fcs=2, ffn_drop=0.1,
                     act_cfg=dict(type='ReLU', inplace=True))))

# Swin (merged into mmdet's / mmseg's SwinTransformer config): no DCN (paper). As the official HCSwin, each
# stage's output before its output norm is clustered onto its PatchMerging output (HCSwinTransformer exposes
# both; `coarse_inputs='next_stage'` would pair the normalised stage outputs instead).
hcformer_swin_backbone = dict(type='HCSwinTransformer', pair_outs=True)
hcformer_swin_s_neck = dict(hcformer_neck, in_channels=[96, 192, 384, 768], coarse_inputs='patch_merging')
hcformer_swin_l_neck = dict(hcformer_swin_s_neck, in_channels=[192, 384, 768, 1536])
# mmdet's Mask2Former Swin-S (panoptic or instance) with HCFormer's parts
hcformer_swin_s_model = dict(
    backbone=hcformer_swin_backbone,
    neck=hcformer_swin_s_neck,
    panoptic_head=dict(hcformer_panoptic_head, in_channels=768))

# The CPU toy variant (configs *_toy_*): ResNet-18 without DCNv2 downsampling (mmcv's CPU kernel makes the
# ResNet-18 forward + backward about twice as slow; paper Table II(b)), from scratch (`init_cfg=None`: no download).
hcformer_r18_toy_backbone = dict(hcformer_backbone, dcn_downsampling=False, init_cfg=None)
hcformer_r18_toy_neck = dict(hcformer_neck, in_channels=[64, 128, 256, 512])
# the toy Mask2Former (configs/_base_/models/mask2former_r18_toy*.py: 3 decoder layers) with HCFormer's parts
hcformer_r18_toy_model = dict(
    backbone=hcformer_r18_toy_backbone,
    neck=hcformer_r18_toy_neck,
    panoptic_head=dict(hcformer_panoptic_head, in_channels=512, transformer_decoder=dict(num_layers=3)))
