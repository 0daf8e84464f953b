# HCFormer, Swin-S (ImageNet-1K), COCO panoptic (paper Table 1: PQ 50.9, 62M params, 170 GFLOPs).
# mmdet's Mask2Former Swin-S panoptic recipe (its pretrained Swin-S checkpoint URL is kept: downloaded at
# init) with the pixel decoder replaced by HCFormer's clustering neck and head. No DCN for Swin (paper).
# Deviation: the official HCSwin clusters each stage's output onto its PatchMerging output (before the next
# stage's blocks); mmdet's SwinTransformer only exposes stage outputs, so the coarse map of each pair is the
# next stage's output (`coarse_inputs='next_stage'`).
_base_ = ['mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(neck=_base_.hcformer_swin_s_neck, panoptic_head=dict(_base_.hcformer_panoptic_head, in_channels=768))
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
