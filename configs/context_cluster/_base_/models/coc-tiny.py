# Context Clusters CoC-Tiny ImageNet classifier (Ma et al., "Image as Set of Points", ICLR 2023; docs/context_cluster.md):
# the stage-3 output through its GroupNorm(1, C) (`norm6`, out_indices=(3, )), global average pooling and a Linear
# head = the official classifier (GroupNorm - mean - Linear); label smoothing 0.1, stochastic depth 0.1.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ContextCluster', arch='tiny', out_indices=(3, ), drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=320,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False,
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)))
