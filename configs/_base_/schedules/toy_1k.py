# The toy schedule of the classification toy configs: 1000 iterations, validation every 250.
train_cfg = dict(by_epoch=False, max_iters=1000, val_interval=250)
val_cfg = dict()
test_cfg = dict()
