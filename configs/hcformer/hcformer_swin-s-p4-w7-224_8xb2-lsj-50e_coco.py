# HCFormer, Swin-S, COCO instance segmentation (no Swin-S instance result in the paper). mmdet's Mask2Former
# Swin-S instance recipe with HCFormer's neck and head; see
# `hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py` for the choices (official PatchMerging pairing).
_base_ = ['mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = _base_.hcformer_swin_s_model
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
