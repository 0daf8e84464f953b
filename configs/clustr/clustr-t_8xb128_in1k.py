# ClusTR-T on ImageNet-1k, the paper's recipe (Xie et al., arXiv 2208.13138, Sec. 4.1 and Table A2, "following
# PVTv2" = the DeiT recipe):
#   224^2 random-resized crops + flip, RandAugment (m9, mstd 0.5), random erasing 0.25, label smoothing 0.1,
#   Mixup 0.8 / CutMix 1.0, stochastic depth 0.1 (T, S) / 0.3 (B) (the paper's "dropout"), gradient clipping
#   none (T, S) / max-norm 1.0 (B); AdamW (betas 0.9 / 0.999), lr 5e-4 x batch / 512 = 1e-3 at batch 1024
#   (8 GPUs x 128), weight decay 0.05 (not on norms, biases and other 1-D parameters, as timm / PVTv2),
#   300 epochs: 5 linear warm-up epochs, then cosine to 1e-5. Test: resize the short side to 256, centre-crop 224.
# Paper: 11.7M parameters, 2.2 GFLOPs, top-1 80.2 (this model: 11.68M).
#
# Inherits mmpretrain's Twins-PCPVT recipe (the same PVT-family DeiT recipe: the data pipeline
# `imagenet_bs64_swin_224` with RandAugment / RandomErasing, Mixup + CutMix, LabelSmoothLoss, 128 / GPU,
# lr 1e-3, 5 warm-up epochs, cosine 300 epochs with eta_min 1e-5) and changes only the backbone, the
# weight-decay exclusions and the gradient clipping (Twins clips at 5.0).
# No checkpoint exists; for fine-tuning from your own weights set
#   model.backbone.init_cfg=dict(type='Pretrained', checkpoint='PATH.pth', prefix='backbone.').
_base_ = 'mmpretrain::twins/twins-pcpvt-small_8xb128_in1k.py'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    # stage-4 map (after its LayerNorm) -> global average pooling -> Linear(512, 1000)
    backbone=dict(_delete_=True, type='ClusTR', arch='tiny', out_indices=(3, ), drop_path_rate=0.1),
    head=dict(in_channels=512))

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=None)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)  # 8 GPUs x 128 images
