# Mask2Former at toy size for the toy COCO panoptic data (../datasets/toy_coco_panoptic_lsj.py; 5 thing + 4 stuff
# classes), CPU-sized: mmdet's ResNet-50 Mask2Former (./mask2former_r50.py) with a ResNet-18 from scratch (no
# download; BN trained), 128-d features, a 2-layer pixel-decoder encoder, 3 decoder layers with 4 heads, 30 queries
# (./mask2former_toy_head.py), 2048 sampled points, inputs padded to 256^2.
_base_ = ['./mask2former_r50.py', './mask2former_toy_head.py']

num_things_classes = 5
num_stuff_classes = 4
num_classes = num_things_classes + num_stuff_classes
image_size = (256, 256)
feat = _base_.toy_feat

batch_augments = [
    dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
         mask_pad_value=0, pad_seg=True, seg_pad_value=255)
]
model = dict(
    data_preprocessor=dict(batch_augments=batch_augments),
    backbone=dict(depth=18, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),
    panoptic_head=dict(
        _base_.mask2former_toy_head,
        in_channels=[64, 128, 256, 512],
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                    ffn_cfg=dict(embed_dims=feat, feedforward_channels=256))),
            positional_encoding=dict(num_feats=feat // 2)),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=2048),
    # instance results: the top 150 of the 30 queries x 9 classes. Any 150 include at least 30 thing pairs (only
    # 30 x 4 are stuff), so an early model whose best pairs are all stuff classes still returns instances; with
    # 30 such a model returns none and mmdet's CocoMetric reports no segm / bbox AP at all. PQ does not use it.
    test_cfg=dict(max_per_image=150))
