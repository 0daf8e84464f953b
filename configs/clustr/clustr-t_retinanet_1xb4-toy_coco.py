# RetinaNet + FPN with a ClusTR-T backbone on the toy COCO instances data, CPU-sized.
# The full recipe (./clustr-s_retinanet_fpn_8xb2-1x_coco.py: AdamW wd 1e-4, linear warm-up, step decay, pad
# to 32, FPN P3-P7 with P6 from the stage-4 map) shrunk: ClusTR-T, 128-channel FPN and heads with 2 stacked
# convs, short side 192 px (random 160 / 192 / 224 for training; DPC-kNN is quadratic in the stage-1 tokens,
# ~48 x 80 = 3840 here), 5 thing classes, batch 4, lr 2e-4, iteration-based with a 100-iteration warm-up and
# x0.1 at 80%.
_base_ = './clustr-s_retinanet_fpn_8xb2-1x_coco.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/coco/'
metainfo = dict(classes=('circle', 'ellipse', 'square', 'star', 'triangle'))
feat = 128

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.),
    neck=dict(out_channels=feat),
    bbox_head=dict(num_classes=5, in_channels=feat, feat_channels=feat, stacked_convs=2),
    # keep low scores: the focal-loss prior starts every score at 0.01, under mmdet's 0.05 threshold, so a briefly
    # trained model would otherwise detect nothing and CocoMetric would report no metrics at all
    test_cfg=dict(score_thr=0.0, max_per_img=50))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize', scales=[(320, 160), (320, 192), (320, 224)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 192), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_iters = 2000
interval = 500
optim_wrapper = dict(optimizer=dict(lr=2e-4))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[int(max_iters * 0.8)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=interval, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
