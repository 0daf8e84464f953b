# ClusterFormer-Tiny on ImageNet-1k with the released recipe (ClusterFormer/ClusterFormer configs/cluster/
# cluster_tiny.py, an mmcls 0.x config): AdamW (amsgrad, eps 1e-8, betas 0.9/0.999), lr 1.25e-4 at 32 images per
# GPU (8 GPUs assumed: the release does not say), weight decay 0.05 on every parameter, gradient clipping 5.0,
# 20 linear warm-up epochs from 1e-3 x lr, cosine to 1e-4 x lr, 300 epochs, validation every 10 epochs;
# bicubic RandomResizedCrop 224, flip, RandAugment (timm increasing policies, 2 ops, magnitude 9, std 0.5),
# RandomErasing 0.25 ('rand' fill); test: short side 248 (bicubic) -> centre crop 224 (mmpretrain's PoolFormer data
# base has exactly these). Paper semantics of the layers (docs/clusterformer.md); the released layer itself
# (`compat=True`) cannot run at 224^2.
# Deviation: mmcv 1.x's CosineAnnealing with warm-up decays over all 300 epochs (the warm-up overriding the first
# 20); here the cosine starts after the warm-up.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs128_poolformer_small_224.py', 'mmpretrain::_base_/default_runtime.py',
    './_base_/models/clusterformer-tiny.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

lr = 1.25e-4
train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=32)
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999), amsgrad=True),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=lr * 1e-4, by_epoch=True, begin=20, end=300, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
