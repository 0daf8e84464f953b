# Semantic FPN with a ClusTR-T backbone on the toy ADE20K-layout data, CPU-sized: the Semantic FPN toy baseline
# (../baselines/fpn_r18_1xb8-toy_ade20k-256x256.py: 128-channel FPN, 64-channel head, the toy ADE20K data, AdamW
# lr 1e-3 wd 1e-4, poly 0.9) with the backbone replaced: ClusTR-T, all four stages out (after their LayerNorms),
# and no weight decay on norms / biases (as ./fpn_clustr-s_4xb4-80k_ade20k-512x512.py). Training is the
# baseline's (stage 1 of a 256^2 crop: 4096 tokens -> 64 + 256 keys per layer).
# Test at short side 192 instead of the baseline's 256: DPC-kNN is quadratic in the tokens of a map and the
# baseline's test images (up to 512 x 256) give stage 1 ~8k tokens, ~5 s per image on two busy CPU cores; at
# (384, 192) it is at most 96 x 48 = 4608 tokens (about a third of the time). 192 lies inside the training
# scales (short side 128-512 before cropping). The backbone accepts any size (no padding to a multiple of 32).
_base_ = [
    '../_base_/models/fpn_r18_toy.py', '../_base_/datasets/toy_ade20k.py', '../_base_/schedules/toy_2k_adamw-poly.py',
    '../_base_/toy_runtime_mmseg.py', './_base_/clustr_dense.py'
]

model = dict(
    backbone=dict(_base_.clustr_backbone, arch='tiny', drop_path_rate=0.),
    neck=dict(in_channels=_base_.clustr_widths))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))

# the toy test pipeline with the images resized to (384, 192)
test_pipeline = [dict(t, scale=(384, 192)) if t.type == 'Resize' else t for t in _base_.test_pipeline]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
