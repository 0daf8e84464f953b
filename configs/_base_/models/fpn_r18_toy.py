# Semantic FPN at toy size (mmseg's `fpn_r50.py` model base), CPU-sized: ResNet-18-V1c from scratch (no download),
# plain BN (no SyncBN on one CPU process), 128-channel FPN, 64-channel head, ADE20K's 150 classes, 256^2 crops.
_base_ = 'mmseg::_base_/models/fpn_r50.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(256, 256)),
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    decode_head=dict(in_channels=[128, 128, 128, 128], channels=64, num_classes=150, norm_cfg=norm_cfg))
