"""kMaX-DeepLab heads: mmdet MaskFormer detector with KMaXHead + KMaXFusionHead (loss, predict, records),
kMaX panoptic post-processing against hand-built cases (rules of ``docs/kmax_deeplab.md``), mmseg wrapper."""
import pytest
import torch

from mmcluster.models.heads.kmax_head import KMaXFusionHead, kmax_panoptic_inference
from mmcluster.models.utils.cluster_record import recording_clusters

INSTANCE_OFFSET = 1000  # mmdet.evaluation.functional.INSTANCE_OFFSET

TOY_HEAD = dict(
    type='KMaXHead', num_things_classes=3, num_stuff_classes=2, in_channels=(64, 128, 256, 512), num_queries=8,
    pixel_decoder=dict(dec_layers=(1, 1, 1, 1), dec_channels=(16, 16, 8, 8)),
    transformer_decoder=dict(query_channels=64, layer_cfg=dict(base_filters=16, ffn_channels=64)),
    criterion=dict(insdis_loss=dict(sample_k=64), aux_semantic_loss=dict(sample_k=64)))


def _detector(**head):
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    import mmcluster  # noqa: F401
    init_default_scope('mmdet')
    cfg = dict(
        type='MaskFormer',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True,
                               pad_size_divisor=32, pad_mask=True, mask_pad_value=0, pad_seg=True,
                               seg_pad_value=255),
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                      norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
        panoptic_head=dict(TOY_HEAD, **head),
        panoptic_fusion_head=dict(type='KMaXFusionHead', num_things_classes=3, num_stuff_classes=2),
        train_cfg=dict(), test_cfg=dict(panoptic_on=True, semantic_on=False, instance_on=False))
    return MODELS.build(ConfigDict(cfg))


def _batch(sizes=((70, 90), (64, 50))):
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 255, (3, h, w), generator=g).to(torch.uint8))
        masks = np.zeros((2, h, w), dtype=np.uint8)
        masks[0, 5:30, 5:40] = 1
        masks[1, 35:60, 10:45] = 1
        sem = torch.full((1, h, w), 3, dtype=torch.long)  # stuff class 3 everywhere ...
        sem[:, :, w // 2:] = 4                              # ... and stuff class 4 on the right
        sem[:, 5:30, 5:40] = 0
        sem[:, 35:60, 10:45] = 2
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(labels=torch.tensor([0, 2]), masks=BitmapMasks(masks, h, w),
                                           bboxes=torch.zeros(2, 4))
        sample.gt_sem_seg = PixelData(sem_seg=sem)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_detector_loss_predict_and_records():
    model = _detector()
    data = model.data_preprocessor(_batch(), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_dice', 'loss_mask', 'loss_insdis', 'loss_aux_semantic', 'loss_cls_5'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    layer0 = model.panoptic_head.transformer_decoder.kmax_transformer_layers[0]
    # the k-means update branch starts at zero (BN weight 0, official) but its scale gets a gradient
    assert layer0.kmeans_query_conv3_bn.norm.weight.grad.abs().sum() > 0

    model.eval()
    data = model.data_preprocessor(_batch(), training=False)
    with torch.no_grad(), recording_clusters(model) as records:
        results = model(**data, mode='predict')
    assert [tuple(r.pred_panoptic_seg.sem_seg.shape) for r in results] == [(1, 70, 90), (1, 64, 50)]
    assert [r.step for r in records] == list(range(6)) and all(r.kind == 'hard' for r in records)
    # padded batch 96 x 96: the k-means layers read strides 32, 32, 16, 16, 8, 8
    assert [r.spatial_shape for r in records] == [(3, 3), (3, 3), (6, 6), (6, 6), (12, 12), (12, 12)]


def test_cmt_variant_trains():
    model = _detector(transformer_decoder=dict(
        query_channels=64, layer_cfg=dict(base_filters=16, ffn_channels=64, assignment='softmax',
                                          mask_residual=True, coord_conv=True, cross_attention_term=True,
                                          self_attn_input='post_kmeans')))
    data = model.data_preprocessor(_batch(((64, 64), )), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))
    model.eval()
    with torch.no_grad(), recording_clusters(model) as records:
        model(**model.data_preprocessor(_batch(((64, 64), )), training=False), mode='predict')
    assert all(r.kind == 'soft' and r.assignment.shape[-1] == 8 for r in records)


def _logits(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_panoptic_inference_rules():
    # 2 things + 2 stuff classes (+ void). 4 queries on a 1 x 4 image.
    cls = _logits([[0.9, 0.02, 0.03, 0.03, 0.02],    # q0: thing 0, score 0.9
                   [0.6, 0.1, 0.1, 0.1, 0.1],        # q1: thing 0, score 0.6 < 0.7 -> dropped
                   [0.02, 0.02, 0.9, 0.03, 0.03],    # q2: stuff 2, score 0.9
                   [0.02, 0.02, 0.85, 0.08, 0.03]])  # q3: stuff 2 again -> merged into one segment
    big, small = 8.0, 0.0
    masks = torch.tensor([[big, small, small, small],
                          [small, big, small, small],
                          [small, small, big, small],
                          [small, small, small, big]], dtype=torch.float64)[:, None, :]
    pan = kmax_panoptic_inference(cls, masks, num_things_classes=2, num_classes=4)
    assert pan.tolist() == [[0 + 1 * INSTANCE_OFFSET, 4, 2, 2]]
    # q0 (thing 0) takes pixels 0-1; q1 (thing 1) shares pixel 1 with q0 (both softmax ~0.5 > 0.4), is ordered
    # after q0 (0.9 * 0.5 < 0.95 * 0.75) and keeps 0 of its 1 pixels (< 80 %) -> dropped; q2 is not confident.
    cls2 = _logits([[0.95, 0.01, 0.01, 0.01, 0.02], [0.01, 0.9, 0.03, 0.03, 0.03], [0.3, 0.2, 0.2, 0.1, 0.2]])
    masks2 = torch.tensor([[[big, big, small, small]], [[small, big, small, small]],
                           [[small, small, big, big]]], dtype=torch.float64)
    pan2 = kmax_panoptic_inference(cls2, masks2, num_things_classes=2, num_classes=4)
    assert pan2.tolist() == [[0 + INSTANCE_OFFSET, 0 + INSTANCE_OFFSET, 4, 4]]


def test_fusion_head_rejects_unknown_test_cfg():
    with pytest.raises(ValueError, match='pixel_confidence_threshold'):
        KMaXFusionHead(test_cfg=dict(pixel_threshold=0.5))


def test_mmseg_wrapper_loss_and_predict():
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    import mmcluster  # noqa: F401
    init_default_scope('mmseg')
    head = {k: v for k, v in TOY_HEAD.items() if k not in ('type', 'num_things_classes', 'num_stuff_classes')}
    model = MODELS.build(ConfigDict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=255, size_divisor=32),
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN')),
        decode_head=dict(type='KMaXSegHead', num_classes=5, **head),
        train_cfg=dict(), test_cfg=dict(mode='whole')))
    samples, inputs = [], []
    for h, w in ((60, 70), (64, 64)):
        inputs.append(torch.randint(0, 255, (3, h, w), dtype=torch.uint8))
        sem = torch.zeros(1, h, w, dtype=torch.long)
        sem[:, 10:40, 10:50] = 3
        sem[:, :5] = 255
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=sem)
        samples.append(s)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))
    model.eval()
    data = model.data_preprocessor(dict(inputs=inputs[:1], data_samples=samples[:1]), training=False)
    with torch.no_grad():
        out = model(**data, mode='predict')  # mmseg tests a batch of one image at its own size
    assert tuple(out[0].pred_sem_seg.data.shape) == (1, 60, 70)
    assert out[0].seg_logits.data.shape == (5, 60, 70)
