# Toy COCO-layout data, boxes (`python tools/make_toy_data.py`; `$MMCLUSTER_TOY_DATA`, default data/toy): five
# shape classes; mmdet's COCO detection base with the short side at 224-288 (test 256) and the long side at most
# 400 instead of (1333, 800); 2 images per batch.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/coco/'
metainfo = dict(classes=('circle', 'ellipse', 'square', 'star', 'triangle'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize', scales=[(400, 224), (400, 256), (400, 288)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
# mmdet's test pipeline at (400, 256)
test_pipeline = [dict(t, scale=(400, 256)) if t.type == 'Resize' else t for t in _base_.test_pipeline]
train_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
