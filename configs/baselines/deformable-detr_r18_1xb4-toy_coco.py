# Deformable-DETR baseline on the toy COCO data (boxes), CPU-sized: mmdet's Deformable DETR shrunk: ResNet-18 from
# scratch (no download), 128-d transformer with 2 encoder and 2 decoder layers, 50 queries; the toy box data
# (short side 224-288), 4 images per batch, all images kept (as mmdet's config: DETR learns from empty images);
# mmdet's optimiser at lr 4e-4 for the 2000-iteration toy schedule, lr x0.1 after 80%.
_base_ = [
    '../_base_/models/deformable-detr_r50.py', '../_base_/datasets/toy_coco_detection.py',
    '../_base_/schedules/toy_2k.py', '../_base_/toy_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

embed = 128
model = dict(
    num_queries=50,
    backbone=dict(depth=18, frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[128, 256, 512], out_channels=embed),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed),
            ffn_cfg=dict(embed_dims=embed, feedforward_channels=256))),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed, num_heads=4),
            cross_attn_cfg=dict(embed_dims=embed),
            ffn_cfg=dict(embed_dims=embed, feedforward_channels=256))),
    positional_encoding=dict(num_feats=embed // 2),
    bbox_head=dict(num_classes=5, embed_dims=embed),
    test_cfg=dict(max_per_img=50))

train_dataloader = dict(batch_size=4, dataset=dict(filter_cfg=dict(filter_empty_gt=False)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        'sampling_offsets': dict(lr_mult=0.1),
        'reference_points': dict(lr_mult=0.1)
    }))
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=2000, by_epoch=False, milestones=[1600], gamma=0.1)
]
