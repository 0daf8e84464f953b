# The classification toy schedule (./toy_1k.py: 1000 iterations, validation every 250) with the AdamW recipe of the
# transformer-era ImageNet papers (timm / DeiT family: weight decay 0.05, none on norms, biases and other 1-D
# parameters) at lr 1e-3 with a 20-iteration linear warm-up, then cosine to 1e-6 (the papers' lr x batch / 1024
# would be too small to move in a few CPU minutes).
_base_ = './toy_1k.py'

optim_wrapper = dict(
    type='OptimWrapper',
    # mmengine's default constructor with plain-dict parameter groups, so that `compile=dict(dynamic=False)`
    # can trace the AdamW step (docs/deployment.md)
    constructor='CompilableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', T_max=1000 - 20, eta_min=1e-6, by_epoch=False, begin=20, end=1000),
]
