# HCFormer panoptic on the toy COCO panoptic data, CPU-sized: the Mask2Former toy baseline
# (../baselines/mask2former_r18_1xb4-toy_coco-panoptic.py: the toy-size Mask2Former, ResNet-18, 256^2 LSJ, feat 128,
# 30 queries, 3 decoder layers, same schedule) with its pixel decoder replaced by HCFormer's clustering
# (./_base_/hcformer.py): HCResNet-18 (first-block outputs as the coarse maps), HCFormerNeck (level 3),
# HCFormerHead (masks decoded through the clusters).
# No DCNv2 downsampling here (`dcn_downsampling=False`, paper Table II(b)): mmcv's CPU kernel makes the ResNet-18
# forward + backward about twice as slow; the R50 configs use it. The backbone starts from scratch
# (`init_cfg=None`): the real configs' `torchvision://resnet50` would be a download.
_base_ = [
    '../_base_/models/mask2former_r18_toy.py', '../_base_/datasets/toy_coco_panoptic_lsj.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmdet.py', './_base_/hcformer.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=_base_.hcformer_r18_toy_backbone, neck=_base_.hcformer_r18_toy_neck,
    panoptic_head=dict(_base_.hcformer_panoptic_head, in_channels=512, transformer_decoder=dict(num_layers=3)))
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
train_dataloader = dict(batch_size=4)
