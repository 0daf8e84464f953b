# Semantic FPN 80k on ADE20K with a Context Clusters CoC-Small/4 backbone (paper Table 7; official
# `segmentation/configs/sem_fpn/fpn_coc_small_2_ade20k_80k.py`, mmseg 0.x):
#   the CoC-Small/4 backbone of ./_base_/coc_dense.py;
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
#   python tools/train.py CONFIG --cfg-options model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=checkpoints/coc-small_in1k.pth
# i.e. init_cfg=dict(type='Pretrained', checkpoint='checkpoints/coc-small_in1k.pth'); for a checkpoint
# trained with configs/context_cluster/coc-small_8xb128_in1k.py add prefix='backbone.'. The converter records
# the aggregation the weights were trained with in the file's meta and `norm_by=None` (./_base_/coc_dense.py)
# follows it; set model.backbone.norm_by by hand only when loading a whole model with load_from
# (see docs/context_cluster.md, checkpoints).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/semantic-fpn_adamw_80k.py', './_base_/coc_dense.py'
]

model = dict(
    pretrained=None,  # the base names open-mmlab://resnet50_v1c; nothing may be downloaded
    data_preprocessor=dict(size=(512, 512), test_cfg=dict(size_divisor=32)),
    backbone=_base_.coc_backbone,
    neck=dict(in_channels=_base_.coc_widths['small']),
    decode_head=dict(num_classes=150))
