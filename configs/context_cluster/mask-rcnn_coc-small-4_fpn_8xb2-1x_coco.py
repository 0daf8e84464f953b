# Mask R-CNN + FPN 1x on COCO with a Context Clusters CoC-Small/4 backbone (paper Table 4; official
# `detection/configs/mask_rcnn_coc_small_2_fpn_1x_coco.py`, the PVT recipe):
#   the CoC-Small/4 backbone of ./_base_/coc_dense.py;
#   AdamW lr 2e-4, weight decay 1e-4 (on all parameters, as the official config), 1x schedule (12 epochs,
#   500-iteration linear warm-up, lr x0.1 after epochs 8 and 11), 2 images / GPU x 8 GPUs, images resized
#   to (1333, 800) and padded to a multiple of 32 (DetDataPreprocessor pad_size_divisor=32, inherited);
#   FPN in_channels [64, 128, 320, 512]. Paper: box AP 35.9, mask AP 33.8, "33.6M" parameters.
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
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/coc_dense.py']

model = dict(backbone=_base_.coc_backbone, neck=dict(in_channels=_base_.coc_widths['small']))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
