# kMaX-DeepLab semantic segmentation on the toy ADE20K-layout data, CPU-sized: the ADE20K config's model shrunk as
# the toy panoptic one (./_base_/kmax_deeplab.py kmax_toy_*), the shared toy ADE20K data (256^2 crops, 4 images per
# batch here) and the toy segmentation schedule (AdamW 1e-3, poly).
_base_ = [
    '../_base_/datasets/toy_ade20k.py', '../_base_/schedules/toy_2k_adamw-poly.py',
    '../_base_/toy_runtime_mmseg.py', './_base_/kmax_deeplab.py'
]
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size={{_base_.crop_size}}),
    backbone=dict(_base_.kmax_r18_toy_backbone, type='ResNetV1c', style='pytorch'),
    decode_head=dict(_base_.kmax_toy_head, type='KMaXSegHead', num_classes=150),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
train_dataloader = dict(batch_size=4)
