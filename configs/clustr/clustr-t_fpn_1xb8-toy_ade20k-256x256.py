# Semantic FPN with a ClusTR-T backbone on the toy ADE20K-layout data, CPU-sized.
# The ResNet-18 Semantic FPN toy baseline (mmseg's ADE20KDataset, 150 classes, 256^2 crops, batch 8, AdamW
# lr 1e-3 wd 1e-4, poly 0.9; FPN 128 channels, FPNHead 64 channels) with the backbone replaced: ClusTR-T, all
# four stages out (after their LayerNorms), FPN in_channels [64, 128, 256, 512], no weight decay on norms /
# biases (as ./clustr-s_fpn_4xb4-80k_ade20k-512x512.py). Training is the baseline's (stage 1 of a 256^2 crop:
# 4096 tokens -> 64 + 256 keys per layer).
# Test at short side 192 instead of the baseline's 256: DPC-kNN is quadratic in the tokens of a map and the
# baseline's test images (up to 512 x 256) give stage 1 ~8k tokens, ~5 s per image on two busy CPU cores; at
# (384, 192) it is at most 96 x 48 = 4608 tokens (about a third of the time). 192 lies inside the training
# scales (short side 128-512 before cropping). The backbone accepts any size (no padding to a multiple of 32).
_base_ = '../baselines/fpn_r18_1xb8-toy_ade20k-256x256.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusTR',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(384, 192), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
