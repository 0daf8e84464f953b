# mmseg's default runtime for the CPU-sized toy runs. mmseg keeps its hooks in the schedule files, so they are
# set here: log every 10 iterations, keep one checkpoint (saved at every validation of the toy schedule), one
# OpenCV thread (the toy runs share a few cores).
_base_ = 'mmseg::_base_/default_runtime.py'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(window_size=10)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
