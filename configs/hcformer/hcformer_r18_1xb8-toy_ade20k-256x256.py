# HCFormer semantic segmentation on the toy ADE20K-layout data, CPU-sized. Shrinks the real config
# `hcformer_r50_8xb2-160k_ade20k-512x512.py` (mmseg's Mask2Former ADE20K recipe + HCFormer) the way the toy
# baselines shrink theirs: HCResNet-18 from scratch (`init_cfg=None`: no download), plain BN (no SyncBN on
# one CPU process), feat 128, 30 queries, 3 decoder layers, 2048 sampled points; data and schedule of
# `../baselines/fpn_r18_1xb8-toy_ade20k-256x256.py` (256² crops, 2000 iters) with the Mask2Former toy
# baseline's optimiser settings (AdamW 2e-4, clip 1.0).
_base_ = './hcformer_r50_8xb2-160k_ade20k-512x512.py'

data_root = '{{$MMCLUSTER_TOY_DATA:data/toy}}/ade'
crop_size = (256, 256)
feat = 128
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # no DCNv2 downsampling on the CPU (mmcv's CPU kernel about doubles the backbone's cost)
    backbone=dict(depth=18, norm_cfg=norm_cfg, norm_eval=False, dcn_downsampling=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(
        in_channels=512,
        feat_channels=feat,
        out_channels=feat,
        num_queries=30,
        positional_encoding=dict(num_feats=feat // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=4),
                ffn_cfg=dict(embed_dims=feat, feedforward_channels=512))),
        train_cfg=dict(num_points=2048)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 256), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 2000
interval = 500
optim_wrapper = dict(optimizer=dict(lr=2e-4), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=interval)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=interval, max_keep_ckpts=1, save_best=None))
log_processor = dict(window_size=10)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
