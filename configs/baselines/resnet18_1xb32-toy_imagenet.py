# ResNet-18 classification baseline on the toy ImageNet-style folders, CPU-sized.
# Inherits mmpretrain's real config; the data are read by mmpretrain's CustomDataset (class = folder),
# 5 classes, 96² crops; iteration-based so that tests and scripts can set a few iterations.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/imagenet'
num_classes = 5
model = dict(head=dict(num_classes=num_classes, topk=(1, )))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=96, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=110, edge='short'),
    dict(type='CenterCrop', crop_size=96),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_iters = 1000
interval = 250
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', T_max=max_iters, by_epoch=False)
train_cfg = dict(_delete_=True, by_epoch=False, max_iters=max_iters, val_interval=interval)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=interval, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
