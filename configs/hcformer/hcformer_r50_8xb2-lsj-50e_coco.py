# HCFormer, ResNet-50, COCO instance segmentation (paper Table 2: AP 37.4, 38M params). mmdet's Mask2Former
# R50 instance recipe with the HCFormer backbone / neck / head of `hcformer_r50_8xb2-lsj-50e_coco-panoptic.py`
# (see there for the choices, the pretrained init and the deviations).
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=_base_.hcformer_backbone, neck=_base_.hcformer_neck, panoptic_head=_base_.hcformer_panoptic_head)
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
