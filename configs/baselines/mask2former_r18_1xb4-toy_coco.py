# Mask2Former instance-segmentation baseline on the toy COCO instance data, CPU-sized: the toy Mask2Former
# instance recipe (../_base_/mask2former_r18_toy_coco.py; the panoptic baseline for instances, as mmdet's
# Mask2Former instance config).
_base_ = '../_base_/mask2former_r18_toy_coco.py'
