# ClusterFormer-Small, ADE20K semantic segmentation (paper Fig. 1 / supp. Fig. S2: 52.4 mIoU; never released):
# mmseg's Mask2Former R50 recipe (512^2 crops, AdamW 1e-4, wd 0.05, backbone lr x0.1, clip 0.01, batch 16, 160k
# iterations, poly) with the ClusterFormer backbone and the ClusterFormer decode head (six recurrent-clustering
# decoder layers, T = 3, encoder-centre queries; ./_base_/clusterformer.py).
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', './_base_/clusterformer.py']
custom_imports = dict(imports=['mmdet.models', 'mmcluster'], allow_failed_imports=False)

model = dict(backbone=_base_.clusterformer_backbone, decode_head=_base_.clusterformer_seg_head)
