# ClusTR for dense prediction (Xie et al., arXiv 2208.13138; docs/clustr.md), merged into a toolkit's detection /
# segmentation model by the configs of this folder: `model = dict(backbone=_base_.clustr_backbone, ...)`.
# ClusTR-S, all four stages out (after their LayerNorms), stochastic depth 0.1 (not stated in the paper; the
# ClusTR-S ImageNet rate, as PVTv2's dense-prediction backbones). No ClusTR checkpoint is published and nothing is
# downloaded: init_cfg=None (the backbone's own trunc-normal init). To start from ImageNet weights trained with
# ./clustr-s_8xb128_in1k.py (a classifier checkpoint, keys 'backbone.*' and 'head.*'):
#   python tools/train.py CONFIG --cfg-options model.backbone.init_cfg._delete_=True \
#       model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH.pth \
#       model.backbone.init_cfg.prefix=backbone.
# i.e. init_cfg=dict(type='Pretrained', checkpoint='PATH.pth', prefix='backbone.') (without `prefix` for a
# checkpoint that holds the backbone's own keys).
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)
clustr_backbone = dict(
    _delete_=True, type='ClusTR', arch='small', out_indices=(0, 1, 2, 3), drop_path_rate=0.1, init_cfg=None)
clustr_widths = [64, 128, 256, 512]  # ClusTR-T and -S; ClusTR-B: [64, 128, 320, 512]
