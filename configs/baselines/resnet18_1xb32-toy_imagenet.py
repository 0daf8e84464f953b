# ResNet-18 classification baseline on the toy ImageNet-style folders, CPU-sized: mmpretrain's ResNet-18 with a
# 5-class head reporting top-1 only; the toy data (96^2 crops, 32 images per batch), SGD lr 0.05 (mmpretrain's
# ResNet recipe: momentum 0.9, weight decay 1e-4), cosine decay over the 1000-iteration toy schedule.
_base_ = [
    'mmpretrain::_base_/models/resnet18.py', '../_base_/datasets/toy_imagenet.py',
    '../_base_/schedules/toy_1k.py', '../_base_/toy_runtime_mmpretrain.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(head=dict(num_classes={{_base_.num_classes}}, topk=(1, )))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max=1000, by_epoch=False)
