# Toy ADE20K-layout data (`python tools/make_toy_data.py`; `$MMCLUSTER_TOY_DATA`, default data/toy): mmseg's
# ADE20KDataset unchanged (150 classes, reduce_zero_label: the toy labels use real ADE20K class indices), images
# about 256 px high; mmseg's ADE20K pipelines at half scale: resize to (512, 256) x 0.5-2.0, 256^2 crops, flip,
# photometric distortion; test at (512, 256). 8 images per batch.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/ade'
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 256), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
