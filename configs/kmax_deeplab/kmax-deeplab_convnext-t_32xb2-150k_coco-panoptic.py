# kMaX-DeepLab, ConvNeXt-T (ImageNet-22k pre-trained, 384 px), COCO panoptic (official PyTorch: 55.5 PQ;
# TF: 55.3 PQ). The R50 recipe with the authors' ConvNeXt (official kmax_convnext_tiny.yaml, drop path 0.3):
# `KMaXConvNeXt` is mmpretrain's ConvNeXt with the official TF-style padding before each downsampling
# (1281 -> 321 / 161 / 81 / 41) and no output norms, so that converted official weights see the official
# features (docs/kmax_deeplab.md). The ImageNet checkpoint's classification norm `norm3` is not used.
_base_ = './kmax-deeplab_r50_32xb2-150k_coco-panoptic.py'
custom_imports = dict(imports=['mmpretrain.models', 'mmcluster'], allow_failed_imports=False)

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext/'
              'convnext-tiny_in21k-pre_3rdparty_in1k-384px_20221219-c1182362.pth')
model = dict(
    backbone=dict(
        _delete_=True, type='KMaXConvNeXt', arch='tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.3,
        layer_scale_init_value=1e-6, tf_padding=True, out_norms=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    panoptic_head=dict(in_channels=(96, 192, 384, 768)))
