# The toy Mask2Former panoptic recipe, complete (CPU-sized): the toy-size Mask2Former (ResNet-18 from scratch, 128-d,
# 30 queries, 3 decoder layers), the toy panoptic data with 256^2 large-scale jittering, 4 images per batch,
# Mask2Former's optimiser at lr 2e-4 (clip 1.0) for the 2000-iteration toy schedule. The baseline
# (../baselines/mask2former_r18_1xb4-toy_coco-panoptic.py) and every family's toy Mask2Former-style panoptic config
# start from it, as the full-size configs start from mmdet's Mask2Former configs.
_base_ = [
    './models/mask2former_r18_toy.py', './datasets/toy_coco_panoptic_lsj.py', './schedules/toy_2k_mask2former.py',
    './toy_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

train_dataloader = dict(batch_size=4)
