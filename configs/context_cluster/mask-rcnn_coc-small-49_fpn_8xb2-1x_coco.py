# Mask R-CNN 1x COCO, CoC-Small/49 (7 x 7 centres per region). Paper: box AP 37.2, mask AP 34.9.
_base_ = './mask-rcnn_coc-small-4_fpn_8xb2-1x_coco.py'
model = dict(backbone=dict(proposal=7))
