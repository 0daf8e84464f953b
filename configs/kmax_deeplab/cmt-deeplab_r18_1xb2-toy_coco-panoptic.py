# CMT-DeepLab clustering (CVPR 2022) in the kMaX toy model (./kmax-deeplab_r18_1xb2-toy_coco-panoptic.py): soft
# assignment (softmax over the clusters), residual path for the assignments, location-sensitive clustering
# (coordinates + reference-mask centroids), centre update = clustering update + original cross-attention. The
# paper's exact forms are not public; docs/kmax_deeplab.md lists what is implemented and how each point is resolved.
_base_ = './kmax-deeplab_r18_1xb2-toy_coco-panoptic.py'

model = dict(panoptic_head=dict(transformer_decoder=dict(layer_cfg=dict(
    assignment='softmax', mask_residual=True, coord_conv=True, cross_attention_term=True))))
