# mmdet's default runtime for the CPU-sized toy runs: log every 10 iterations, keep one checkpoint (saved at
# every validation of the toy schedule), one OpenCV thread (the toy runs share a few cores).
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
