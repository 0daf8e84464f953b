# HCFormer panoptic on the toy COCO panoptic data, CPU-sized: the toy Mask2Former recipe of the baseline
# (../_base_/mask2former_r18_toy_coco-panoptic.py: the toy-size Mask2Former, ResNet-18, 256^2 LSJ, feat 128,
# 30 queries, 3 decoder layers, same schedule) with its pixel decoder replaced by HCFormer's clustering
# (./_base_/hcformer.py): HCResNet-18 (first-block outputs as the coarse maps), HCFormerNeck (level 3),
# HCFormerHead (masks decoded through the clusters).
# No DCNv2 downsampling here (`dcn_downsampling=False`, paper Table II(b)): mmcv's CPU kernel makes the ResNet-18
# forward + backward about twice as slow; the R50 configs use it. The backbone starts from scratch
# (`init_cfg=None`): the real configs' `torchvision://resnet50` would be a download.
_base_ = ['../_base_/mask2former_r18_toy_coco-panoptic.py', './_base_/hcformer.py']

model = _base_.hcformer_r18_toy_model
optim_wrapper = dict(paramwise_cfg=_base_.hcformer_paramwise_cfg)
