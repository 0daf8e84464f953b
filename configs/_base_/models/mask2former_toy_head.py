# The toy-size (CPU) Mask2Former decoder as variables (no `model` key, so that mmdet's and mmseg's Mask2Former
# configs can both use it): 128-d features, 30 queries, 3 masked-attention decoder layers with 4 heads and FFN 512.
# Used by ./mask2former_r18_toy.py (mmdet) and the toy ADE20K configs built on ./mask2former_r50_mmseg.py:
# `panoptic_head=dict(_base_.mask2former_toy_head, ...)`.
toy_feat = 128
mask2former_toy_head = dict(
    feat_channels=toy_feat,
    out_channels=toy_feat,
    num_queries=30,
    positional_encoding=dict(num_feats=toy_feat // 2),
    transformer_decoder=dict(
        num_layers=3,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=toy_feat, num_heads=4),
            cross_attn_cfg=dict(embed_dims=toy_feat, num_heads=4),
            ffn_cfg=dict(embed_dims=toy_feat, feedforward_channels=512))))
