# kMaX-DeepLab, ConvNeXt-T (ImageNet-22k pre-trained, 384 px), COCO panoptic (official PyTorch: 55.5 PQ;
# TF: 55.3 PQ). The R50 recipe with mmpretrain's ConvNeXt (drop path 0.3, official kmax_convnext_tiny.yaml).
_base_ = './kmax-deeplab_r50_32xb2-150k_coco-panoptic.py'
custom_imports = dict(imports=['mmpretrain.models', 'mmcluster'], allow_failed_imports=False)

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext/'
              'convnext-tiny_in21k-pre_3rdparty_in1k-384px_20221219-c1182362.pth')
model = dict(
    backbone=dict(
        _delete_=True, type='mmpretrain.ConvNeXt', arch='tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.3,
        layer_scale_init_value=1e-6, gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    panoptic_head=dict(in_channels=(96, 192, 384, 768)))
