# The toy schedule (./toy_2k.py) of the detection toy configs: AdamW lr 2e-4, weight decay 1e-4, a 25-iteration
# linear warm-up, lr x0.1 after 80% of the 2000 iterations (mmdet's 1x schedule in miniature).
_base_ = './toy_2k.py'

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', begin=0, end=2000, by_epoch=False, milestones=[1600], gamma=0.1)
]
