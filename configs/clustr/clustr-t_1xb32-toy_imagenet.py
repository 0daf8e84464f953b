# ClusTR-T classification on the toy ImageNet-style folders, CPU-sized: an ImageClassifier (mmpretrain's ResNet-18
# model base with the backbone replaced: stage-4 map -> global average pooling -> Linear(512, 5), label smoothing
# 0.1, no stochastic depth) on the toy data (96^2 crops, 32 images per batch) with the AdamW toy schedule (the
# paper's optimiser family, ./clustr-t_8xb128_in1k.py: wd 0.05 not on norms / biases / 1-D parameters; lr 1e-3)
# and a 50-iteration warm-up; no Mixup / CutMix / RandAugment / erasing (they slow down learning on this tiny data
# set). At 96^2 the token maps are 24^2 / 12^2 / 6^2 / 3^2: stage 1 clusters 576 tokens into 9 + 36 keys, stage 2
# 144 tokens into 9 + 36, stage 3 36 tokens into 9 + all 36, stage 4 plain attention over 9 tokens.
_base_ = [
    'mmpretrain::_base_/models/resnet18.py', '../_base_/datasets/toy_imagenet.py',
    '../_base_/schedules/toy_1k_adamw.py', '../_base_/toy_runtime_mmpretrain.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='ClusTR', arch='tiny', out_indices=(3, ), drop_path_rate=0.),
    head=dict(
        num_classes={{_base_.num_classes}},
        in_channels=512,
        loss=dict(_delete_=True, type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, ),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=1000 - 50, eta_min=1e-6, by_epoch=False, begin=50, end=1000),
]
