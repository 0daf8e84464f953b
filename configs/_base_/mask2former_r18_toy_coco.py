# The toy Mask2Former instance-segmentation recipe, complete: ./mask2former_r18_toy_coco-panoptic.py for instances
# (the toy Mask2Former for the five thing classes, the toy COCO instance data with the same LSJ), as mmdet's
# Mask2Former instance config. Used by ../baselines/mask2former_r18_1xb4-toy_coco.py and the families' toy
# instance configs.
_base_ = [
    './models/mask2former_r18_toy_instance.py', './datasets/toy_coco_instance_lsj.py',
    './schedules/toy_2k_mask2former.py', './toy_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

train_dataloader = dict(batch_size=4)
