# The toy schedule (./toy_2k.py) of the segmentation toy configs: AdamW lr 1e-3, weight decay 1e-4, poly decay
# (power 0.9, to 0) over the 2000 iterations.
_base_ = './toy_2k.py'

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=2000, by_epoch=False)]
