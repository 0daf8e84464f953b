# Toy COCO-layout panoptic data (`python tools/make_toy_data.py`; `$MMCLUSTER_TOY_DATA`, default data/toy): five
# thing and four stuff classes; mmdet's COCO panoptic base with Mask2Former's large-scale jittering at 256^2
# instead of 1024^2 (resize x 0.5-1.5, 256^2 crops, flip; test: resize into 256^2), evaluated with PQ and with
# box / mask mAP (as mmdet's Mask2Former panoptic config); 2 images per batch.
_base_ = 'mmdet::_base_/datasets/coco_panoptic.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/coco/'
thing_classes = ('circle', 'ellipse', 'square', 'star', 'triangle')
stuff_classes = ('sky', 'grass', 'water', 'wall')
metainfo = dict(
    classes=thing_classes + stuff_classes, thing_classes=thing_classes, stuff_classes=stuff_classes)
crop_size = (256, 256)

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/'),
    dict(type='CocoMetric',
         ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['bbox', 'segm'])
]
test_evaluator = val_evaluator
