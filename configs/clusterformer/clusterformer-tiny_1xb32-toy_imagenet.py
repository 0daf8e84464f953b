# ClusterFormer-Tiny classification on the toy ImageNet-style folders, CPU-sized: the released classifier
# (./_base_/models/clusterformer-tiny.py: four pooled stages concatenated, 5 classes, top-1) on the toy data (96^2
# crops, 32 images per batch) with the AdamW toy schedule (lr 1e-3, wd 0.05 not on norms / biases / 1-D parameters,
# 20 warm-up iterations, cosine).
_base_ = [
    './_base_/models/clusterformer-tiny.py', '../_base_/datasets/toy_imagenet.py', '../_base_/schedules/toy_1k_adamw.py',
    '../_base_/toy_runtime_mmpretrain.py'
]
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)

model = dict(head=dict(num_classes={{_base_.num_classes}}, topk=(1, )))
