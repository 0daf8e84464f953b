# kMaX-DeepLab, ResNet-50, ADE20K semantic segmentation (mmseg EncoderDecoder + KMaXSegHead). The official
# ADE20K recipe (bytedance/kmax-deeplab configs/ade20k/panoptic_segmentation/kmax_r50.yaml: 150 classes, 128
# queries, drop path 0, scale 0.5-2.0, batch 64, 100k iterations, AdamW 5e-4) on mmseg's ADE20K semantic data
# with 641^2 crops (deeplab2's 641 setting); semantic output = einsum(softmax(class), softmax_queries(masks)).
# The official model is trained for panoptic ADE20K (PQ 42.2 PyTorch / 41.5 TF at 641); no semantic number is
# published for this exact setting.
_base_ = ['mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py', './_base_/kmax_deeplab.py']
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

crop_size = (641, 641)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size),
    backbone=_base_.kmax_r50_backbone,
    decode_head=dict(_base_.kmax_head, type='KMaXSegHead', num_classes=150,
                     transformer_decoder=dict(dec_layers=(2, 2, 2), drop_path_rate=0.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2564, 641), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

optim_wrapper = _base_.kmax_optim_wrapper
param_scheduler = [_base_.kmax_param_scheduler[0], dict(_base_.kmax_param_scheduler[1], end=100000)]
train_cfg = dict(_base_.kmax_train_cfg, max_iters=100000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000))
