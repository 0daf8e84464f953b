# Mask2Former instance-segmentation baseline on the toy COCO instance data, CPU-sized: the panoptic baseline
# (./mask2former_r18_1xb4-toy_coco-panoptic.py) for instances, as mmdet's Mask2Former instance config.
_base_ = [
    '../_base_/models/mask2former_r18_toy_instance.py', '../_base_/datasets/toy_coco_instance_lsj.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

train_dataloader = dict(batch_size=4)
