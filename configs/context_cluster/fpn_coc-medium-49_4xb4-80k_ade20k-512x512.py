# Semantic FPN 80k ADE20K, CoC-Medium/49 (7 x 7 centres per region). Paper: mIoU 40.8.
_base_ = './fpn_coc-medium-4_4xb4-80k_ade20k-512x512.py'
model = dict(backbone=dict(proposal=7))
