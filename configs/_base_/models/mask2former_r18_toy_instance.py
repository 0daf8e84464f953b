# The toy-size Mask2Former (./mask2former_r18_toy.py) for instance segmentation on the toy COCO instance data
# (../datasets/toy_coco_instance_lsj.py): the five thing classes, no stuff, no semantic padding, instance results
# only; the same changes as mmdet's `mask2former_r50_8xb2-lsj-50e_coco.py` makes to its panoptic config.
_base_ = './mask2former_r18_toy.py'

num_things_classes = 5
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
model = dict(
    data_preprocessor=dict(
        pad_seg=False,
        batch_augments=[
            dict(type='BatchFixedSizePad', size={{_base_.image_size}}, img_pad_value=0, pad_mask=True,
                 mask_pad_value=0, pad_seg=False)
        ]),
    panoptic_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    test_cfg=dict(panoptic_on=False, max_per_image=30))  # thing classes only: one result per query
