# ClusterFormer-Small detector, COCO boxes (paper Fig. 1 / supp. Fig. S1: 54.2 box AP, compared with Deformable-DETR;
# the detector was never released and the paper does not name its framework). mmdet's Deformable DETR with box
# refinement (50 epochs, AdamW 2e-4, wd 1e-4, clip 0.1, backbone / sampling offsets / reference points lr x0.1,
# batch 32) with the ClusterFormer-Small backbone (strides 8 / 16 / 32 + one extra level) and ClusterFormerDETR:
# six decoder layers whose cross-attention is the recurrent clustering over the multi-level memory (T = 3),
# content queries from the encoder's centres (./_base_/clusterformer.py, docs/clusterformer.md).
_base_ = ['mmdet::deformable_detr/deformable-detr-refine_r50_16xb2-50e_coco.py', './_base_/clusterformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(
    _base_.clusterformer_detr,
    backbone=dict(_base_.clusterformer_backbone, out_indices=(1, 2, 3)),
    neck=dict(in_channels=_base_.clusterformer_widths['small'][1:]))
