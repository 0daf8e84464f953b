# Semantic FPN baseline on the toy ADE20K-layout data, CPU-sized: the toy-size Semantic FPN (ResNet-18-V1c from
# scratch, 128-channel FPN, 64-channel head) on the toy ADE20K data (256^2 crops, 8 images per batch), AdamW lr 1e-3
# with poly decay over the 2000-iteration toy schedule.
_base_ = [
    '../_base_/models/fpn_r18_toy.py', '../_base_/datasets/toy_ade20k.py', '../_base_/schedules/toy_2k_adamw-poly.py',
    '../_base_/toy_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)
