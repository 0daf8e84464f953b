# UperNet with a ClusTR-T backbone on the toy ADE20K-layout data, CPU-sized: the ClusTR-T Semantic FPN toy
# (./fpn_clustr-t_1xb8-toy_ade20k-256x256.py: data, schedule, test at short side 192) with the FPN neck and head
# replaced by UperNet's PPM/FPN head (128 channels) and its auxiliary FCN head on stage 3 (64 channels, weight 0.4),
# as in the full recipe ./upernet_clustr-s_4xb4-160k_ade20k-512x512.py.
_base_ = './fpn_clustr-t_1xb8-toy_ade20k-256x256.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels=[64, 128, 256, 512],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=128,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=256,
        in_index=2,
        channels=64,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
