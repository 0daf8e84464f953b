# HCFormer instance segmentation on the toy COCO instance data, CPU-sized: the toy Mask2Former instance recipe of
# the baseline (../_base_/mask2former_r18_toy_coco.py) with HCFormer's backbone hooks (no DCNv2 on the CPU), neck and
# head (see ./hcformer_r18_1xb4-toy_coco-panoptic.py).
_base_ = ['../_base_/mask2former_r18_toy_coco.py', './_base_/hcformer.py']

model = _base_.hcformer_r18_toy_model
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
