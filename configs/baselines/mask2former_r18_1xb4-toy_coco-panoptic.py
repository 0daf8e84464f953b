# Mask2Former panoptic baseline on the toy COCO panoptic data, CPU-sized: the toy Mask2Former panoptic recipe
# (../_base_/mask2former_r18_toy_coco-panoptic.py: ResNet-18 from scratch, 128-d, 30 queries, 3 decoder layers,
# 256^2 large-scale jittering, 4 images per batch, Mask2Former's optimiser at lr 2e-4 (clip 1.0), 2000 iterations).
_base_ = '../_base_/mask2former_r18_toy_coco-panoptic.py'
