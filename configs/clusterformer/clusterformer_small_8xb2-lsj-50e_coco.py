# ClusterFormer-Small, COCO instance segmentation (paper Fig. 1 / supp. Fig. S3: mask AP 47.0; never released):
# mmdet's Mask2Former R50 instance recipe with the ClusterFormer backbone and head (see
# ./clusterformer_small_8xb2-lsj-50e_coco-panoptic.py and ./_base_/clusterformer.py).
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', './_base_/clusterformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(backbone=_base_.clusterformer_backbone, panoptic_head=_base_.clusterformer_panoptic_head)
