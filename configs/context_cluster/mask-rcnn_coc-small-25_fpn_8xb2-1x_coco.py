# Mask R-CNN 1x COCO, CoC-Small/25 (5 x 5 centres per region). Paper: box AP 37.5, mask AP 35.4.
_base_ = './mask-rcnn_coc-small-4_fpn_8xb2-1x_coco.py'
model = dict(backbone=dict(proposal=5))
