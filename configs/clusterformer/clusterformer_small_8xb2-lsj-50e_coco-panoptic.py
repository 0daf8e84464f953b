# ClusterFormer-Small, COCO panoptic (paper Fig. 1 / supp. Fig. S4: PQ 55.8; never released). mmdet's Mask2Former R50
# panoptic recipe (LSJ 1024, AdamW 1e-4, wd 0.05, backbone lr x0.1, clip 0.01, batch 16, 368,750 iterations; the
# paper states it built its models with MMDetection and compares with Mask2Former, schedules are not published)
# with the ClusterFormer-Small backbone and the ClusterFormer head: six decoder layers whose cross-attention is the
# recurrent clustering (T = 3, softmax over the queries), queries from the encoder's centres (./_base_/clusterformer.py).
# No ImageNet checkpoint exists: train ./clusterformer-small_8xb64_in1k.py and set the backbone's init_cfg.
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py', './_base_/clusterformer.py']
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(backbone=_base_.clusterformer_backbone, panoptic_head=_base_.clusterformer_panoptic_head)
