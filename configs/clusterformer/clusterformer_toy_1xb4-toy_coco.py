# ClusterFormer instance segmentation on the toy COCO instance data, CPU-sized: the instance variant of
# ./clusterformer_toy_1xb4-toy_coco-panoptic.py (the toy Mask2Former for instances, five thing classes).
_base_ = ['../_base_/mask2former_r18_toy_coco.py', './_base_/clusterformer.py']

model = dict(backbone=_base_.clusterformer_toy_backbone, panoptic_head=_base_.clusterformer_toy_panoptic_head)
