# Mask2Former with a ResNet-50 for ADE20K semantic segmentation: the model of mmseg's
# `mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py` (mmseg has no model base for it;
# tests/test_configs/test_bases.py checks that the two are equal). Its pixel decoder, losses and assigner are
# mmdet's: a config using it imports `mmdet.models` (custom_imports).
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    pad_val=0, seg_pad_val=255, size=(512, 512), test_cfg=dict(size_divisor=32))
num_classes = 150
attn = dict(embed_dims=256, num_heads=8, attn_drop=0.0, proj_drop=0.0, dropout_layer=None, batch_first=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet', depth=50, deep_stem=False, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='SyncBN', requires_grad=False), style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    decode_head=dict(
        type='Mask2FormerHead', in_channels=[256, 512, 1024, 2048], strides=[4, 8, 16, 32], feat_channels=256,
        out_channels=256, num_classes=num_classes, num_queries=100, num_transformer_feat_level=3,
        align_corners=False,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder', num_outs=3, norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'), init_cfg=None,
            encoder=dict(  # DeformableDetrTransformerEncoder
                num_layers=6, init_cfg=None,
                layer_cfg=dict(
                    self_attn_cfg=dict(  # MultiScaleDeformableAttention
                        embed_dims=256, num_heads=8, num_levels=3, num_points=4, im2col_step=64, dropout=0.0,
                        batch_first=True, norm_cfg=None, init_cfg=None),
                    ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, num_fcs=2, ffn_drop=0.0,
                                 act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=128, normalize=True)),  # SinePositionalEncoding
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=128, normalize=True),
        transformer_decoder=dict(  # Mask2FormerTransformerDecoder
            return_intermediate=True, num_layers=9, init_cfg=None,
            layer_cfg=dict(
                self_attn_cfg=attn, cross_attn_cfg=attn,
                ffn_cfg=dict(embed_dims=256, feedforward_channels=2048, num_fcs=2,
                             act_cfg=dict(type='ReLU', inplace=True), ffn_drop=0.0, dropout_layer=None,
                             add_identity=True))),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, reduction='mean',
                      class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean', loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, reduction='mean', naive_dice=True,
                       eps=1.0, loss_weight=5.0),
        train_cfg=dict(
            num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
            assigner=dict(type='mmdet.HungarianAssigner', match_costs=[
                dict(type='mmdet.ClassificationCost', weight=2.0),
                dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
            sampler=dict(type='mmdet.MaskPseudoSampler'))),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
