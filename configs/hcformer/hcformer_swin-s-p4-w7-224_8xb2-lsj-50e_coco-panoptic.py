# HCFormer, Swin-S (ImageNet-1K), COCO panoptic (paper Table 1: PQ 50.9, 62M params, 170 GFLOPs).
# mmdet's Mask2Former Swin-S panoptic recipe (its pretrained Swin-S checkpoint URL is kept: downloaded at
# init) with the pixel decoder replaced by HCFormer's clustering neck and head. No DCN for Swin (paper).
# As the official HCSwin, each stage's output before its output norm is clustered onto its PatchMerging output
# (HCSwinTransformer, `coarse_inputs='patch_merging'`; `'next_stage'` is the option that pairs stage outputs).
_base_ = ['mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py', './_base_/hcformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = _base_.hcformer_swin_s_model
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
