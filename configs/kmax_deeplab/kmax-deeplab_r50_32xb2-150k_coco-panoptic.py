# kMaX-DeepLab, ResNet-50, COCO panoptic (official PyTorch: 53.3 PQ; TF deeplab2: 53.0 PQ; docs/kmax_deeplab.md).
# The official recipe (bytedance/kmax-deeplab kmax_r50.yaml): 1281^2 large-scale jittering (scale 0.2-2.0), every
# image padded to 1281^2 (normalised value 0), batch 64 (32 GPUs x 2), 150k iterations, AdamW 5e-4 with 5k warm-up
# and poly decay, backbone lr x0.1. Our pixel decoder runs at any size; the fixed 1281^2 padding (train:
# BatchFixedSizePad, test: Pad) is kept so that converted official checkpoints see what they were trained on.
# Deviations: no AMP on the CPU (add `optim_wrapper.type='AmpOptimWrapper'` on GPUs); no panoptic copy-paste.
_base_ = ['mmdet::_base_/datasets/coco_panoptic.py', 'mmdet::_base_/default_runtime.py', './_base_/kmax_deeplab.py']

image_size = (1281, 1281)
model = dict(
    type='MaskFormer',
    data_preprocessor=dict(
        _base_.kmax_data_preprocessor,
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
                             mask_pad_value=0, pad_seg=True, seg_pad_value=255)]),
    backbone=_base_.kmax_r50_backbone,
    panoptic_head=_base_.kmax_head,
    panoptic_fusion_head=_base_.kmax_fusion_head,
    train_cfg=dict(),
    test_cfg=_base_.kmax_test_cfg)

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.2, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=127.5, seg=255)),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=2, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = _base_.kmax_optim_wrapper
param_scheduler = _base_.kmax_param_scheduler
train_cfg = _base_.kmax_train_cfg
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True, interval=5000))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=64)
