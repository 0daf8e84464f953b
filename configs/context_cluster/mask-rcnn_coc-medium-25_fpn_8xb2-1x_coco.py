# Mask R-CNN 1x COCO, CoC-Medium/25 (5 x 5 centres per region). Paper: box AP 40.1, mask AP 37.4.
_base_ = './mask-rcnn_coc-medium-4_fpn_8xb2-1x_coco.py'
model = dict(backbone=dict(proposal=5))
