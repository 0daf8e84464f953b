# Mask R-CNN + FPN with a ClusTR-T backbone on the toy COCO instances data, CPU-sized.
# The CoC-Tiny toy Mask R-CNN (../context_cluster/coc-tiny_mask-rcnn_1xb2-toy_coco.py: 128-channel FPN and
# heads, batch 2, iteration-based) with the backbone replaced by ClusTR-T (all four stages out, FPN
# in_channels [64, 128, 256, 512]). Tested at short side 192 as the ClusTR RetinaNet toy (DPC-kNN is quadratic
# in the stage-1 tokens). The full recipe is ./clustr-s_mask-rcnn_fpn_8xb2-1x_coco.py.
_base_ = '../context_cluster/coc-tiny_mask-rcnn_1xb2-toy_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusTR',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 192), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
