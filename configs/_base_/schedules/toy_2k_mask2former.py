# The toy schedule (./toy_2k.py: 2000 iterations, validation every 500) with Mask2Former's optimiser (mmdet's and
# mmseg's Mask2Former recipe: AdamW, weight decay 0.05, none on norms and on the query / level embeddings,
# backbone lr x0.1) at a toy learning rate: 2e-4 instead of 1e-4 and gradients clipped at 1.0 instead of 0.01,
# so that a few CPU minutes move the model; lr x0.1 after 90% of the iterations.
_base_ = './toy_2k.py'

embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'query_embed': embed_multi,
            'query_feat': embed_multi,
            'level_embed': embed_multi,
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = dict(
    type='MultiStepLR', begin=0, end=2000, by_epoch=False, milestones=[1800], gamma=0.1)
