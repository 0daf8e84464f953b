# Mask R-CNN + FPN with a Context Clusters CoC-Tiny/25 backbone on the toy COCO instances data, CPU-sized.
# The full recipe (./coc-small-4_mask-rcnn_fpn_8xb2-1x_coco.py: AdamW lr 2e-4 wd 1e-4, pad to 32) shrunk:
# CoC-Tiny with 5 x 5 centres per region (the paper's best dense variant is /25), FPN / RPN / RoI heads at
# 128 channels, a 256-d box head, fewer proposals and RoIs, short side ~256 px, 5 thing classes,
# iteration-based with a 25-iteration warm-up.
_base_ = './coc-small-4_mask-rcnn_fpn_8xb2-1x_coco.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/coco/'
metainfo = dict(classes=('circle', 'ellipse', 'square', 'star', 'triangle'))
num_classes = 5
feat = 128

model = dict(
    backbone=dict(arch='tiny', proposal=5),
    neck=dict(in_channels=[32, 64, 196, 320], out_channels=feat),
    rpn_head=dict(in_channels=feat, feat_channels=feat),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=feat),
        bbox_head=dict(in_channels=feat, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=feat),
        mask_head=dict(in_channels=feat, conv_out_channels=feat, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=[(400, 224), (400, 256), (400, 288)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(400, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
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
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[int(max_iters * 0.8)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=interval, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
