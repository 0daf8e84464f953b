# HCFormer instance segmentation on the toy COCO instance data, CPU-sized: the Mask2Former instance toy baseline
# (../baselines/mask2former_r18_1xb4-toy_coco.py) with HCFormer's backbone hooks (no DCNv2 on the CPU), neck and
# head (see ./hcformer_r18_1xb4-toy_coco-panoptic.py).
_base_ = [
    '../_base_/models/mask2former_r18_toy_instance.py', '../_base_/datasets/toy_coco_instance_lsj.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmdet.py', './_base_/hcformer.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=_base_.hcformer_r18_toy_backbone, neck=_base_.hcformer_r18_toy_neck,
    panoptic_head=dict(_base_.hcformer_panoptic_head, in_channels=512, transformer_decoder=dict(num_layers=3)))
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
train_dataloader = dict(batch_size=4)
