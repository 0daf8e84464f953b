# ClusterFormer detector on the toy COCO box data, CPU-sized: mmdet's Deformable DETR shrunk as the toy baseline
# (128-d transformer, 2 encoder and 2 decoder layers, 50 queries, all images kept) with the reduced ClusterFormer
# backbone and ClusterFormerDETR (recurrent-clustering decoder cross-attention, T = 3, encoder-centre queries on a
# 5 x 10 grid); the AdamW detection toy schedule (lr 2e-4, x0.1 at 80%) with mmdet's clipping and lr multipliers.
_base_ = [
    '../_base_/models/deformable-detr_r50.py', '../_base_/datasets/toy_coco_detection.py',
    '../_base_/schedules/toy_2k_adamw-step.py', '../_base_/toy_runtime_mmdet.py', './_base_/clusterformer.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

embed = 128
ffn = dict(embed_dims=embed, feedforward_channels=256)
model = dict(
    _base_.clusterformer_detr,
    num_queries=50,
    backbone=dict(_base_.clusterformer_toy_backbone, out_indices=(1, 2, 3)),
    neck=dict(in_channels=_base_.clusterformer_widths['toy'][1:], out_channels=embed),
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=dict(embed_dims=embed), ffn_cfg=ffn)),
    decoder=dict(num_layers=2, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=embed, num_heads=4), cross_attn_cfg=dict(embed_dims=embed, num_heads=4),
        ffn_cfg=ffn)),
    positional_encoding=dict(num_feats=embed // 2),
    bbox_head=dict(num_classes=5, embed_dims=embed),
    test_cfg=dict(max_per_img=50))
train_dataloader = dict(batch_size=4, dataset=dict(filter_cfg=dict(filter_empty_gt=False)))
optim_wrapper = dict(clip_grad=dict(max_norm=0.1, norm_type=2), paramwise_cfg=dict(custom_keys={
    'backbone': dict(lr_mult=0.1), 'reference_points': dict(lr_mult=0.1)}))
