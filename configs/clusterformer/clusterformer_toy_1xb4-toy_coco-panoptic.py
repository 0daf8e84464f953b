# ClusterFormer panoptic on the toy COCO panoptic data, CPU-sized: the toy Mask2Former recipe of
# the baseline (../_base_/mask2former_r18_toy_coco-panoptic.py: 256^2 LSJ, feat 128, 30 queries, 3 decoder layers, same
# schedule) with the reduced ClusterFormer backbone and the ClusterFormer head (recurrent-clustering cross-attention,
# T = 3, queries from the encoder's centres on a 5 x 6 grid); ./_base_/clusterformer.py.
_base_ = ['../_base_/mask2former_r18_toy_coco-panoptic.py', './_base_/clusterformer.py']

model = dict(backbone=_base_.clusterformer_toy_backbone, panoptic_head=_base_.clusterformer_toy_panoptic_head)
