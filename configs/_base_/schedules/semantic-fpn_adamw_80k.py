# The Semantic FPN recipe of the PVT-era backbone papers on ADE20K (followed by Context Clusters and ClusTR): AdamW
# lr 1e-4, weight decay 1e-4, poly decay (power 0.9, to 0) over 80k iterations, validation and checkpoints every
# 8k (mmseg's 80k schedule with the optimiser replaced).
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)]
