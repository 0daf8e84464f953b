# Semantic FPN 80k on ADE20K with a Context Clusters CoC-Small/4 backbone (paper Table 7; official
# `segmentation/configs/sem_fpn/fpn_coc_small_2_ade20k_80k.py`, mmseg 0.x):
#   "/4": 2 x 2 centres per region (`proposal=2`; /25 -> 5, /49 -> 7), regions 8/4/2/1 per side;
#   AdamW lr 1e-4 (the official configs; the paper's text says 2e-4), weight decay 1e-4, poly decay
#   (power 0.9, to 0) over 80k iterations, 512 x 512 crops, batch 16 (4 GPUs x 4); FPN in_channels
#   [64, 128, 320, 512]. Paper: mIoU 36.6, "17.7M" parameters (= params / 2^20, see README).
# Test: the official pipeline resizes to (2048, 512) and then `AlignResize`s each side to a multiple of 32;
# mmseg 1.x has no AlignResize, so the test images are padded to a multiple of 32 instead
# (SegDataPreProcessor test_cfg size_divisor=32; the logits are cropped back). The backbone itself accepts
# any size.
#
# Pretrained backbone (nothing is downloaded by this config; by default the backbone starts from its own
# trunc-normal init). Convert an official ImageNet checkpoint once and point the backbone at it:
#   python tools/model_converters/coc2mmcluster.py coc_small.pth.tar checkpoints/coc-small_in1k.pth --arch small
#   python tools/train.py CONFIG --cfg-options model.backbone.init_cfg._delete_=True \
#       model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=checkpoints/coc-small_in1k.pth
# i.e. init_cfg=dict(type='Pretrained', checkpoint='checkpoints/coc-small_in1k.pth'); for a checkpoint
# trained with configs/context_cluster/coc-small_8xb128_in1k.py add prefix='backbone.'. The official
# ImageNet checkpoints used for the published ADE20K numbers are generation 1: also set
# model.backbone.norm_by='mask' (see the converter and REFERENCE section 1.6).
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the base names open-mmlab://resnet50_v1c; nothing may be downloaded
    data_preprocessor=dict(test_cfg=dict(size_divisor=32)),
    backbone=dict(
        _delete_=True,
        type='ContextCluster',
        arch='small',
        proposal=2,
        out_indices=(0, 1, 2, 3),
        norm_by='sim',
        drop_path_rate=0.,
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
    neck=dict(in_channels=[64, 128, 320, 512]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
# 80k schedule (the base is 160k)
max_iters = 80000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000))
