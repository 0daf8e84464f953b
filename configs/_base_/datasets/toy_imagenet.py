# Toy ImageNet-style folders (`python tools/make_toy_data.py`; `$MMCLUSTER_TOY_DATA`, default data/toy): 5 classes,
# one folder per class under train/ and val/, read by mmpretrain's CustomDataset; 96^2 crops, 32 images per batch.
# mmpretrain's ImageNet base with the toy data and sizes.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/imagenet'
num_classes = 5
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
    num_workers=1,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(topk=(1, ))
test_evaluator = val_evaluator
