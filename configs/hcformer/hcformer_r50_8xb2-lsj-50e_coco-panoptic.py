# HCFormer, ResNet-50, COCO panoptic (paper Table 1: PQ 47.7, 38M params, 87 GFLOPs; Appendix D.1).
# mmdet's Mask2Former R50 panoptic recipe (LSJ 1024, AdamW 1e-4, wd 0.05, backbone lr x0.1, clip 0.01,
# batch 16, 368,750 iters with x0.1 steps at 327,778 / 355,092 = the official HCFormer config values; the
# paper's text says 0.9 / 0.95) with the pixel decoder removed:
# - backbone: mmdet ResNet-50 + DCNv2 downsampling in the first block of stages 2-4 (Appendix E.2) and the
#   first-block outputs that the official code clusters onto (HCResNet);
# - neck: three clustering modules (hierarchical level 3, C_F 128, s init 0.1);
# - head: Mask2Former's masked-attention decoder with 8 layers on the stride-32 feature, masks decoded
#   through the clusters to stride 4; L1 regulariser on the scales (weight 0.1, |sum s| as in the code).
# Pretrained init: the backbone keeps the base config's `torchvision://resnet50` (downloaded at init; the
# DCN main weights load from it, the new offset convs start at zero). FrozenBN as in the official code
# (BN requires_grad False, norm_eval True: the base's setting).
# Deviations: no AMP (the official training used it; add `optim_wrapper.type='AmpOptimWrapper'` on GPUs).
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    backbone=_base_.hcformer_backbone, neck=_base_.hcformer_neck, panoptic_head=_base_.hcformer_panoptic_head)
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
