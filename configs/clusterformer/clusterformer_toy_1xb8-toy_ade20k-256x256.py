# ClusterFormer semantic segmentation on the toy ADE20K-layout data, CPU-sized: the real config
# (./clusterformer_small_8xb2-160k_ade20k-512x512.py) shrunk as the toy baselines shrink theirs: the reduced
# ClusterFormer backbone, feat 128, a 2-layer pixel-decoder encoder, 30 queries, 3 decoder layers, 2048 sampled
# points; the toy ADE20K data (256^2 crops, 8 images per batch) and Mask2Former's optimiser at the toy lr 2e-4
# (clip 1.0) with poly decay over the 2000-iteration toy schedule.
_base_ = [
    '../_base_/models/mask2former_r50_mmseg.py', '../_base_/datasets/toy_ade20k.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmseg.py', './_base_/clusterformer.py'
]
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

feat = 128
attn = dict(embed_dims=feat, num_heads=4)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=_base_.clusterformer_toy_backbone,
    decode_head=dict(
        _base_.clusterformer_seg_head,
        in_channels=_base_.clusterformer_widths['toy'],
        feat_channels=feat,
        out_channels=feat,
        num_queries=30,
        pixel_decoder=dict(encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=attn, ffn_cfg=dict(embed_dims=feat, feedforward_channels=256))),
            positional_encoding=dict(num_feats=feat // 2)),
        positional_encoding=dict(num_feats=feat // 2),
        transformer_decoder=dict(num_layers=3, layer_cfg=dict(
            self_attn_cfg=attn, cross_attn_cfg=attn, ffn_cfg=dict(embed_dims=feat, feedforward_channels=512))),
        train_cfg=dict(num_points=2048)))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=2000, by_epoch=False)]
