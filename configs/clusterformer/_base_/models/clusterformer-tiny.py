# ClusterFormer-Tiny ImageNet classifier as released (ClusterFormer/ClusterFormer configs/cluster/cluster_tiny.py;
# docs/clusterformer.md): the four stage outputs through their GroupNorms, each globally average-pooled and
# concatenated (96 + 192 + 384 + 768 = 1440 channels, the release's modified GlobalAveragePooling neck), a Linear
# head, plain cross-entropy (no label smoothing, no mixup / cutmix in the release).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ClusterFormer', arch='tiny', out_indices=(0, 1, 2, 3)),
    neck=dict(type='ConcatGlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1440,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
