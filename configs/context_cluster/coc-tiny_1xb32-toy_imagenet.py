# Context Clusters CoC-Tiny classification on the toy ImageNet-style folders, CPU-sized.
# The ResNet-18 toy baseline (same data, 96^2 crops, 5 classes, batch 32, iteration-based) with the CoC-Tiny
# backbone and the paper's optimiser family (AdamW, wd 0.05 not on norms / biases / 1-D parameters, label
# smoothing 0.1); lr 1e-3 with a short warm-up instead of 1e-3 * 32 / 1024 (too small to move in a few
# CPU minutes). No mixup / RandAugment: they slow down learning on this tiny data set.
_base_ = '../baselines/resnet18_1xb32-toy_imagenet.py'

model = dict(
    backbone=dict(_delete_=True, type='ContextCluster', arch='tiny', out_indices=(3, ), drop_path_rate=0.),
    head=dict(
        in_channels=320,
        loss=dict(_delete_=True, type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)))

max_iters = 1000  # as the baseline
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', T_max=max_iters - 20, eta_min=1e-6, by_epoch=False, begin=20,
         end=max_iters),
]
