# Semantic FPN with a Context Clusters CoC-Tiny/4 backbone on the toy ADE20K-layout data, CPU-sized (`make demo`).
# The Semantic FPN toy baseline (../baselines/fpn_r18_1xb8-toy_ade20k-256x256.py: 128-channel FPN, 64-channel head,
# the toy ADE20K data, AdamW lr 1e-3, poly) with the backbone replaced: CoC-Tiny (2 x 2 centres per region,
# regions 8/4/2/1 per side), all four stages out through their GroupNorms, and no weight decay on norms / biases.
# The test images keep their own size (not multiples of 32): the backbone handles any size (uneven regions).
_base_ = [
    '../_base_/models/fpn_r18_toy.py', '../_base_/datasets/toy_ade20k.py', '../_base_/schedules/toy_2k_adamw-poly.py',
    '../_base_/toy_runtime_mmseg.py', './_base_/coc_dense.py'
]

model = dict(
    backbone=dict(
        _delete_=True, type='ContextCluster', arch='tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.),
    neck=dict(in_channels=_base_.coc_widths['tiny']))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
