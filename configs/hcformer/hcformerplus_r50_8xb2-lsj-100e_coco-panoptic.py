# HCFormer+, ResNet-50, COCO panoptic (paper Table 1: PQ 50.2, 46M params, 96 GFLOPs): HCFormer plus a
# 6-layer post-norm transformer encoder on the stride-32 feature (d 256, 8 heads, FFN 2048, dropout 0.1,
# 1x1 conv + GN(32) input projection, sine positional encoding), trained 100 epochs (737,500 iters; the
# LR steps keep the 50-epoch config's fractions 0.889 / 0.963).
_base_ = './hcformer_r50_8xb2-lsj-50e_coco-panoptic.py'

model = dict(neck=dict(encoder=_base_.hcformerplus_encoder), panoptic_head=dict(in_channels=256))

max_iters = 737500
interval = 5000
param_scheduler = dict(end=max_iters, milestones=[655556, 710184])
train_cfg = dict(max_iters=max_iters, dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
