# kMaX-DeepLab's parts (k-means Mask Transformer, ECCV 2022; docs/kmax_deeplab.md) as variables, merged into
# mmdet's MaskFormer detector (panoptic) or mmseg's EncoderDecoder (semantic) by the configs of this folder.
# Values of the official PyTorch configs (bytedance/kmax-deeplab configs/coco/panoptic_segmentation/kmax_r50.yaml):
# - norms: SyncBN eps 1e-3, momentum 0.01 everywhere (TF decay 0.99); pixels normalised with mean = std = 127.5;
# - head: axial pixel decoder (1/5/1/1 blocks, widths 512/256/128/64), 2+2+2 k-means layers, 128 queries,
#   drop path 0.2 (COCO), auxiliary semantic head; losses PQ-style 3.0 / 3.0, mask-ID 0.3, instance
#   discrimination 1.0 (4096 pixels, temperature 1.5), auxiliary semantic 1.0 (4096 pixels, temperature 2.0);
# - panoptic post-processing: mask 0.4, thing 0.7, stuff 0.5, overlap 0.8 (COCO);
# - optimiser: AdamW lr 5e-4, weight decay 0.05, backbone lr x0.1, no clipping, batch 64; 5k linear warm-up
#   then poly 0.9 (TF2WarmupPolyLR). The official runs used AMP (`optim_wrapper.type='AmpOptimWrapper'` on GPUs).
# Usage: `model = dict(type='MaskFormer', data_preprocessor=_base_.kmax_data_preprocessor,
#   backbone=_base_.kmax_r50_backbone, panoptic_head=_base_.kmax_head, panoptic_fusion_head=_base_.kmax_fusion_head,
#   test_cfg=_base_.kmax_test_cfg)`.
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

kmax_norm = dict(type='SyncBN', eps=1e-3, momentum=0.01)
kmax_data_preprocessor = dict(
    type='DetDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], bgr_to_rgb=True,
    pad_size_divisor=32, pad_value=127.5, pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
kmax_r50_backbone = dict(
    type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_cfg=kmax_norm,
    norm_eval=False, style='pytorch', init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
kmax_head = dict(
    type='KMaXHead', num_things_classes=80, num_stuff_classes=53, in_channels=(256, 512, 1024, 2048),
    num_queries=128, norm_cfg=kmax_norm,
    pixel_decoder=dict(dec_layers=(1, 5, 1, 1), dec_channels=(512, 256, 128, 64)),
    transformer_decoder=dict(dec_layers=(2, 2, 2), drop_path_rate=0.2),
    criterion=dict(
        pq_loss=dict(class_weight=3.0, dice_weight=3.0), mask_id_loss=dict(loss_weight=0.3),
        insdis_loss=dict(loss_weight=1.0, sample_k=4096, sample_temperature=1.5),
        aux_semantic_loss=dict(loss_weight=1.0, sample_k=4096, sample_temperature=2.0), no_object_weight=1e-5))
kmax_fusion_head = dict(type='KMaXFusionHead', num_things_classes=80, num_stuff_classes=53)
kmax_test_cfg = dict(
    panoptic_on=True, semantic_on=False, instance_on=False, pixel_confidence_threshold=0.4,
    class_threshold_thing=0.7, class_threshold_stuff=0.5, overlap_threshold=0.8)
kmax_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
kmax_param_scheduler = [  # TF2WarmupPolyLR: 5k linear warm-up, then poly 0.9 to 0 at the last iteration (COCO 150k)
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5000),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=5000, end=150000)
]
kmax_train_cfg = dict(type='IterBasedTrainLoop', max_iters=150000, val_interval=5000)

# The CPU toy variant: ResNet-18 from scratch (no download), plain BN, small pixel decoder and k-means layers.
# BN momentum 0.1 instead of the official 0.01: with 0.01 the running statistics used at evaluation stay near
# their initial values for the first ~hundreds of iterations, longer than a toy run.
kmax_toy_norm = dict(type='BN', eps=1e-3, momentum=0.1)
kmax_r18_toy_backbone = dict(
    kmax_r50_backbone, depth=18, norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None)
kmax_toy_head = dict(
    kmax_head, in_channels=(64, 128, 256, 512), num_queries=32, norm_cfg=kmax_toy_norm,
    pixel_decoder=dict(dec_layers=(1, 1, 1, 1), dec_channels=(64, 32, 16, 16)),
    transformer_decoder=dict(dec_layers=(1, 1, 1), query_channels=128, drop_path_rate=0.0,
                             layer_cfg=dict(base_filters=32, ffn_channels=256)),
    criterion=dict(kmax_head['criterion'], insdis_loss=dict(sample_k=1024, sample_temperature=1.5),
                   aux_semantic_loss=dict(sample_k=1024, sample_temperature=2.0)))
