# Mask R-CNN + FPN heads at toy size for the 5 classes of the toy COCO data (mmdet's `mask-rcnn_r50_fpn.py` model
# base), CPU-sized: FPN / RPN / RoI heads at 128 channels, a 256-d box head, fewer proposals and RoIs. The backbone
# (mmdet's ResNet-50) is what the configs replace.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

num_classes = 5
feat = 128
model = dict(
    neck=dict(out_channels=feat),
    rpn_head=dict(in_channels=feat, feat_channels=feat),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=feat),
        bbox_head=dict(in_channels=feat, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=feat),
        mask_head=dict(in_channels=feat, conv_out_channels=feat, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))
