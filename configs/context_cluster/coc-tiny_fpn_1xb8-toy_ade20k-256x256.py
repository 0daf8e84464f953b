# Semantic FPN with a Context Clusters CoC-Tiny backbone on the toy ADE20K-layout data, CPU-sized (`make demo`).
# The ResNet-18 Semantic FPN toy baseline (mmseg's ADE20KDataset, 150 classes, 256^2 crops, batch 8, AdamW
# lr 1e-3, poly) with the backbone replaced: CoC-Tiny (2 x 2 centres per region, regions 8/4/2/1 per side),
# all four stages out through their GroupNorms, FPN in_channels [32, 64, 196, 320]. The test images keep
# their own size (not multiples of 32): the backbone handles any size (uneven regions).
_base_ = '../baselines/fpn_r18_1xb8-toy_ade20k-256x256.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ContextCluster',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.),
    neck=dict(in_channels=[32, 64, 196, 320]))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
