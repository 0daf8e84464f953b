# RetinaNet + FPN with a ClusTR-T backbone on the toy COCO data (boxes), CPU-sized: the full recipe
# (./retinanet_clustr-s_fpn_8xb2-1x_coco.py: mmdet's RetinaNet, AdamW wd 1e-4, pad to 32, FPN P3-P7 with P6 from
# the stage-4 map) in miniature: ClusTR-T, 128-channel FPN and heads with 2 stacked convs, the toy box data at
# short side 192 (random 160 / 192 / 224 for training; DPC-kNN is quadratic in the stage-1 tokens, ~48 x 80 = 3840
# here), 4 images per batch, the toy step schedule (lr 2e-4) with a 100-iteration warm-up.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py', '../_base_/datasets/toy_coco_detection.py',
    '../_base_/schedules/toy_2k_adamw-step.py', '../_base_/toy_runtime_mmdet.py', './_base_/clustr_dense.py'
]

feat = 128
model = dict(
    backbone=dict(_base_.clustr_backbone, arch='tiny', drop_path_rate=0.),
    neck=dict(in_channels=_base_.clustr_widths, out_channels=feat),
    bbox_head=dict(num_classes=5, in_channels=feat, feat_channels=feat, stacked_convs=2),
    # keep low scores: the focal-loss prior starts every score at 0.01, under mmdet's 0.05 threshold, so a briefly
    # trained model would otherwise detect nothing and CocoMetric would report no metrics at all
    test_cfg=dict(score_thr=0.0, max_per_img=50))

# the toy box pipelines with the short side at 160-224 (training) and 192 (test), the long side at most 320
train_pipeline = [
    dict(t, scales=[(320, 160), (320, 192), (320, 224)]) if t.type == 'RandomChoiceResize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [dict(t, scale=(320, 192)) if t.type == 'Resize' else t for t in _base_.test_pipeline]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=2000, by_epoch=False, milestones=[1600], gamma=0.1)
]
