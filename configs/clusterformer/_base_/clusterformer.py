# ClusterFormer's parts (NeurIPS 2023; docs/clusterformer.md), merged into a toolkit's model by the configs of this
# folder as variables (no `model` key here): `model = dict(backbone=_base_.clusterformer_backbone, ...)`.
# - backbone: ClusterFormer-Small (released settings; paper semantics: residual M-step, real spatial windows of
#   14 px, Eq. 6 dispatch; `compat=True` = the released layer), all four stages out through their GroupNorms,
#   no stochastic depth (the released configs set none), random init (no checkpoint was ever released: train
#   ./clusterformer-small_8xb64_in1k.py first and load it with init_cfg=dict(type='Pretrained', checkpoint=...,
#   prefix='backbone.'));
# - Mask2Former-style heads (mmdet instance / panoptic, mmseg semantic): six decoder layers whose cross-attention
#   is the recurrent clustering (T = 3 per layer, softmax over the queries), queries from the encoder's centres;
# - detector: mmdet's Deformable DETR (box refinement) with the same decoder cross-attention (six layers, T = 3).
clusterformer_widths = dict(tiny=[96, 192, 384, 768], small=[96, 192, 384, 768], toy=[32, 64, 128, 256])
clusterformer_backbone = dict(
    _delete_=True, type='ClusterFormer', arch='small', out_indices=(0, 1, 2, 3), drop_path_rate=0., init_cfg=None)
clusterformer_decoder = dict(query_init='encoder', num_iters=3, transformer_decoder=dict(num_layers=6))
clusterformer_panoptic_head = dict(clusterformer_decoder, type='ClusterFormerHead', in_channels=[96, 192, 384, 768])
clusterformer_seg_head = dict(clusterformer_decoder, type='ClusterFormerSegHead', in_channels=[96, 192, 384, 768])
clusterformer_detr = dict(type='ClusterFormerDETR', query_init='encoder', num_iters=3, decoder=dict(num_layers=6))

# The CPU toy variant (configs *-toy_*): a reduced ClusterFormer (one or two blocks per stage, 32-256 channels,
# 2 x 2 centres per window of at most 8 px, T = 3) so that the toy trainings run in minutes on one core.
clusterformer_toy_backbone = dict(
    clusterformer_backbone,
    arch=dict(layers=[1, 1, 2, 1], embed_dims=clusterformer_widths['toy'], mlp_ratios=4, heads=[1, 2, 4, 8],
              head_dim=32, num_centers=2, windows=[32, 16, 8, 4], window_size=8, num_iters=3))
clusterformer_toy_panoptic_head = dict(  # with the toy Mask2Former sizes of configs/_base_/models/mask2former_r18_toy.py
    clusterformer_panoptic_head, in_channels=clusterformer_widths['toy'], transformer_decoder=dict(num_layers=3))
