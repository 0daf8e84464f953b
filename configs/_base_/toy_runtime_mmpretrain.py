# mmpretrain's default runtime for the CPU-sized toy runs: log every 10 iterations, keep one checkpoint (saved at
# every validation of the 1k-iteration toy schedule).
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=250, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
