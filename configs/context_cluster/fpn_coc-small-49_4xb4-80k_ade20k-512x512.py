# Semantic FPN 80k ADE20K, CoC-Small/49 (7 x 7 centres per region). Paper: mIoU 36.3.
_base_ = './fpn_coc-small-4_4xb4-80k_ade20k-512x512.py'
model = dict(backbone=dict(proposal=7))
