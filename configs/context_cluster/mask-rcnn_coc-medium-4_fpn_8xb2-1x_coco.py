# Mask R-CNN 1x COCO, CoC-Medium/4 (2 x 2 centres per region); recipe as mask-rcnn_coc-small-4_fpn_8xb2-1x_coco.py.
# Paper: box AP 38.6, mask AP 36.1, "42.1M" parameters (the built model has more; see README).
_base_ = './mask-rcnn_coc-small-4_fpn_8xb2-1x_coco.py'
model = dict(backbone=dict(arch='medium'))
