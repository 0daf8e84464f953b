"""ClusterFormerDETR (Deformable-DETR framework): decoder cross-attention = recurrent clustering over the memory,
queries from the encoder's centres; losses, backward, predictions on an odd-sized batch with padding."""
import pytest
import torch

pytest.importorskip('mmdet.models')

from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmcluster.models.heads.clusterformer_detr import ClusterFormerDETR  # noqa: E402
from mmcluster.models.layers import RecurrentClusteringCrossAttention  # noqa: E402
from mmcluster.models.utils.cluster_record import recording_clusters  # noqa: E402

D = 32


def detr_cfg(**kw):
    cfg = dict(
        num_queries=6, num_feature_levels=2, with_box_refine=True, as_two_stage=False,
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[1., 1., 1.], pad_size_divisor=1),
        backbone=dict(type='mmcluster.ClusterFormer', arch=dict(
            layers=[1, 1, 1, 1], embed_dims=[8, 8, 16, 16], mlp_ratios=1, heads=2, head_dim=4, num_centers=2,
            windows=1, window_size=4, num_iters=1), out_indices=(1, 2)),
        neck=dict(type='ChannelMapper', in_channels=[8, 16], kernel_size=1, out_channels=D, act_cfg=None,
                  norm_cfg=dict(type='GN', num_groups=8), num_outs=2),
        encoder=dict(num_layers=1, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=D, num_levels=2, num_heads=4, num_points=2, batch_first=True),
            ffn_cfg=dict(embed_dims=D, feedforward_channels=64, ffn_drop=0.0))),
        decoder=dict(num_layers=2, return_intermediate=True, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=D, num_heads=4, dropout=0.0, batch_first=True),
            cross_attn_cfg=dict(embed_dims=D, num_levels=2, num_heads=4, num_points=2, batch_first=True),
            ffn_cfg=dict(embed_dims=D, feedforward_channels=64, ffn_drop=0.0)), post_norm_cfg=None),
        positional_encoding=dict(num_feats=D // 2, normalize=True, offset=-0.5),
        bbox_head=dict(type='DeformableDETRHead', num_classes=3, embed_dims=D, sync_cls_avg_factor=True,
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
                       loss_bbox=dict(type='L1Loss', loss_weight=5.0), loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
        train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
            dict(type='FocalLossCost', weight=2.0), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
        test_cfg=dict(max_per_img=5))
    cfg.update(kw)
    return cfg


@pytest.fixture(autouse=True)
def mmdet_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def batch():
    """Two images of different odd sizes, padded to one batch (the memory has padded tokens)."""
    imgs = torch.randn(2, 3, 61, 75)
    samples = []
    for i, (h, w) in enumerate([(61, 75), (45, 53)]):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(61, 75), batch_input_shape=(61, 75),
                                        ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(labels=torch.tensor([i, 2]),
                                      bboxes=torch.tensor([[2., 3., 30., 40.], [20., 10., 44., 44.]]))
        samples.append(s)
    imgs[1, :, 45:] = 0
    imgs[1, :, :, 53:] = 0
    return imgs, samples


def build(**kw):
    model = ClusterFormerDETR(**detr_cfg(**kw))
    model.init_weights()
    return model


def test_decoder_cross_attention_is_the_clustering_and_queries_come_from_the_encoder():
    model = build()
    assert all(isinstance(layer.cross_attn, RecurrentClusteringCrossAttention) for layer in model.decoder.layers)
    assert model.query_embedding.weight.shape == (6, D) and model.query_clustering.num_centers == (2, 3)
    imgs, samples = batch()
    losses = model.loss(imgs, samples)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.decoder.layers[0].cross_attn.clustering.k_proj.weight.grad.abs().sum() > 0
    assert model.query_clustering.center_ffn[0].weight.grad.abs().sum() > 0
    model.eval()
    with recording_clusters(model) as records, torch.no_grad():
        results = model.predict(imgs, samples)
    assert len(results) == 2 and results[0].pred_instances.bboxes.shape[1] == 4
    enc = [r for r in records if r.name == 'query_clustering']
    assert [r.step for r in enc] == [0, 1, 2] and enc[0].spatial_shape == (4, 5)


def test_padded_memory_gets_no_responsibility_and_free_queries():
    model = build()
    model.eval()
    imgs, samples = batch()
    with recording_clusters(model) as records, torch.no_grad():
        model.predict(imgs, samples)
    rec = [r for r in records if r.name == 'query_clustering'][0]
    # image 2 covers 45x53 of the 61x75 batch; mmdet resizes its padding mask to the 4x5 level by nearest
    # sampling (rows 0, 15, 30, 45 and columns 0, 15, 30, 45, 60): row 3 and column 4 are padding
    gamma = rec.assignment[1].sum(-1).view(-1, 4, 5)  # [E, 4, 5]: responsibility mass per token
    assert (gamma[:, 3, :] == 0).all() and (gamma[:, :, 4] == 0).all()
    torch.testing.assert_close(gamma[:, :3, :4], torch.ones_like(gamma[:, :3, :4]))
    free = build(query_init='free')
    assert free.query_embedding.weight.shape == (6, 2 * D) and not hasattr(free, 'query_clustering')
    with pytest.raises(ValueError, match='as_two_stage'):
        ClusterFormerDETR(**detr_cfg(as_two_stage=True))
