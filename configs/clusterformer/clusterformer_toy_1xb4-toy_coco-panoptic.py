# ClusterFormer panoptic on the toy COCO panoptic data, CPU-sized: the Mask2Former toy baseline
# (../baselines/mask2former_r18_1xb4-toy_coco-panoptic.py: 256^2 LSJ, feat 128, 30 queries, 3 decoder layers, same
# schedule) with the reduced ClusterFormer backbone and the ClusterFormer head (recurrent-clustering cross-attention,
# T = 3, queries from the encoder's centres on a 5 x 6 grid); ./_base_/clusterformer.py.
_base_ = [
    '../_base_/models/mask2former_r18_toy.py', '../_base_/datasets/toy_coco_panoptic_lsj.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmdet.py', './_base_/clusterformer.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(backbone=_base_.clusterformer_toy_backbone, panoptic_head=_base_.clusterformer_toy_panoptic_head)
train_dataloader = dict(batch_size=4)
