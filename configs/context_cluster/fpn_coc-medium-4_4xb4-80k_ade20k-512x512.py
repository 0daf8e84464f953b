# Semantic FPN 80k ADE20K, CoC-Medium/4 (2 x 2 centres per region); recipe as
# fpn_coc-small-4_4xb4-80k_ade20k-512x512.py. Paper: mIoU 40.2, "25.2M" parameters (the built model has
# more; see README).
_base_ = './fpn_coc-small-4_4xb4-80k_ade20k-512x512.py'
model = dict(backbone=dict(arch='medium'))
