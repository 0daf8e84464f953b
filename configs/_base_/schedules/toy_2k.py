# The toy schedule of the detection and segmentation toy configs: 2000 iterations, validation every 500
# (tests and tools/train.py shorten it with --cfg-options train_cfg.max_iters=N or a time budget). The
# optimiser and the learning-rate policy belong to each model's recipe.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
