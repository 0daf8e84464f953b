# ClusterFormer instance segmentation on the toy COCO instance data, CPU-sized: the instance variant of
# ./clusterformer_toy_1xb4-toy_coco-panoptic.py (the toy Mask2Former for instances, five thing classes).
_base_ = [
    '../_base_/models/mask2former_r18_toy_instance.py', '../_base_/datasets/toy_coco_instance_lsj.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmdet.py', './_base_/clusterformer.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(backbone=_base_.clusterformer_toy_backbone, panoptic_head=_base_.clusterformer_toy_panoptic_head)
train_dataloader = dict(batch_size=4)
