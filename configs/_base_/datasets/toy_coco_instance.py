# Toy COCO-layout data, boxes and instance masks: the box data (./toy_coco_detection.py: sizes, batch) with the
# masks loaded and evaluated (bbox and segm mAP), as mmdet's COCO instance base.
_base_ = './toy_coco_detection.py'

train_pipeline = [dict(t, with_mask=True) if t.type == 'LoadAnnotations' else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, with_mask=True) if t.type == 'LoadAnnotations' else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
