# Semantic FPN with a ClusTR-T backbone on the toy ADE20K-layout data, CPU-sized.
# The ResNet-18 Semantic FPN toy baseline (mmseg's ADE20KDataset, 150 classes, 256^2 crops, batch 8, AdamW
# lr 1e-3 wd 1e-4, poly 0.9; FPN 128 channels, FPNHead 64 channels) with the backbone replaced: ClusTR-T, all
# four stages out (after their LayerNorms), FPN in_channels [64, 128, 256, 512], no weight decay on norms /
# biases (as ./clustr-s_fpn_4xb4-80k_ade20k-512x512.py scaled down). At 256^2 stage 1 clusters 64^2 = 4096
# tokens into 64 + 256 keys per layer. Test images keep their own size (short side 256): the backbone accepts
# any size.
_base_ = '../baselines/fpn_r18_1xb8-toy_ade20k-256x256.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusTR',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
