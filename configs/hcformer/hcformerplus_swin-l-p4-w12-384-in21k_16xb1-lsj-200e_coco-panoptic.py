# HCFormer+, Swin-L (ImageNet-22K, window 12, 384), COCO panoptic (paper Table 1: PQ 55.7, 217M params, 725
# GFLOPs) -- the model of the only released official checkpoint (HCFormer+-SwinL-COCO-200epoch.pth; convert it
# with tools/model_converters/hcformer2mmcluster.py, docs/hcformer.md). mmdet's Mask2Former Swin-L panoptic recipe
# (LSJ 1024, 200 queries, batch 16 = 16 x 1; its Swin-L ImageNet-22K URL is kept: downloaded at init) with
# - backbone: HCSwinTransformer (mmdet's Swin-L + the pre-norm stage outputs and PatchMerging outputs that the
#   official HCSwin clusters), no DCN;
# - neck: three clustering modules on the official pairs (`coarse_inputs='patch_merging'`) and HCFormer+'s
#   6-layer encoder on the stride-32 feature (256 channels);
# - head: 8 decoder layers, 200 queries, masks decoded through the clusters;
# - schedule: 200 epochs = 1,475,000 iterations, lr x0.1 at 1,311,112 / 1,420,368 (the official config).
_base_ = [
    'mmdet::mask2former/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic.py', './_base_/hcformer.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=_base_.hcformer_swin_backbone,
    neck=dict(_base_.hcformer_swin_l_neck, encoder=_base_.hcformerplus_encoder),
    panoptic_head=dict(_base_.hcformer_panoptic_head, in_channels=256, num_queries=200))
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)

max_iters = 1475000
interval = 5000
param_scheduler = dict(end=max_iters, milestones=[1311112, 1420368])
train_cfg = dict(max_iters=max_iters, dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
