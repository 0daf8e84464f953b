# Mask R-CNN 1x COCO, CoC-Medium/49 (7 x 7 centres per region). Paper: box AP 40.6, mask AP 37.6.
_base_ = './mask-rcnn_coc-medium-4_fpn_8xb2-1x_coco.py'
model = dict(backbone=dict(proposal=7))
