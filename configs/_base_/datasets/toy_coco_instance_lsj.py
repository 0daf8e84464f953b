# Toy COCO-layout instance data with Mask2Former's large-scale jittering at 256^2: the panoptic LSJ data
# (./toy_coco_panoptic_lsj.py) turned into instance segmentation as mmdet's Mask2Former instance config does it
# (CocoDataset, the five thing classes, boxes and masks, empty crops filtered out; bbox and segm mAP).
_base_ = './toy_coco_panoptic_lsj.py'

metainfo = dict(classes={{_base_.thing_classes}})
crop_size = {{_base_.crop_size}}
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.5, 1.5), resize_type='Resize',
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(type='CocoDataset', metainfo=metainfo, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(_delete_=True, img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CocoDataset', metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(_delete_=True, img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=_base_.data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator
