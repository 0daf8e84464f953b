# Mask2Former panoptic baseline on the toy COCO panoptic data, CPU-sized: the toy-size Mask2Former (ResNet-18 from
# scratch, 128-d, 30 queries, 3 decoder layers), the toy panoptic data with 256^2 large-scale jittering, 4 images
# per batch, Mask2Former's optimiser at lr 2e-4 (clip 1.0) for the 2000-iteration toy schedule.
_base_ = [
    '../_base_/models/mask2former_r18_toy.py', '../_base_/datasets/toy_coco_panoptic_lsj.py',
    '../_base_/schedules/toy_2k_mask2former.py', '../_base_/toy_runtime_mmdet.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

train_dataloader = dict(batch_size=4)
