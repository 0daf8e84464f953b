"""ClusterFormer heads (mmdet Mask2Former / mmseg decode head): the decoder cross-attention is the recurrent
clustering (softmax over the queries), queries from the encoder's centres, losses and predictions of the
toolkits, cluster records; tiny sizes, odd image sizes."""
import pytest
import torch

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.mask import BitmapMasks  # noqa: E402
from mmengine.structures import InstanceData, PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmcluster.models.heads import ClusterFormerHead, ClusterFormerSegHead  # noqa: E402
from mmcluster.models.heads.clusterformer_head import query_grid  # noqa: E402
from mmcluster.models.layers import RecurrentClusteringCrossAttention  # noqa: E402
from mmcluster.models.utils.cluster_record import recording_clusters  # noqa: E402
from e2e import mask2former_train_cfg  # noqa: E402

CH = [8, 16, 24, 32]
FEAT = 32
TRAIN_CFG = mask2former_train_cfg(64)


def head_kwargs(num_classes=4, layers=2, **kw):
    attn = dict(embed_dims=FEAT, num_heads=4, dropout=0.0, batch_first=True)
    args = dict(
        in_channels=CH, feat_channels=FEAT, out_channels=FEAT, num_queries=6, num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder', num_outs=3, norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='ReLU'),
            encoder=dict(num_layers=1, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=FEAT, num_heads=4, num_levels=3, num_points=2, batch_first=True),
                ffn_cfg=dict(embed_dims=FEAT, feedforward_channels=64, num_fcs=2, ffn_drop=0.0))),
            positional_encoding=dict(num_feats=FEAT // 2, normalize=True)),
        transformer_decoder=dict(return_intermediate=True, num_layers=layers, layer_cfg=dict(
            self_attn_cfg=attn, cross_attn_cfg=attn,
            ffn_cfg=dict(embed_dims=FEAT, feedforward_channels=64, num_fcs=2, ffn_drop=0.0))),
        positional_encoding=dict(num_feats=FEAT // 2, normalize=True),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, reduction='mean',
                      class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean', loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                       naive_dice=True, eps=1.0, loss_weight=5.0),
        train_cfg=TRAIN_CFG)
    args.update(kw)
    return args


@pytest.fixture(autouse=True)
def toolkit_scope(request):
    from mmengine.registry import DefaultScope
    scope = 'mmseg' if 'seg' in request.node.name else 'mmdet'
    with DefaultScope.overwrite_default_scope(scope):
        yield


def feats(b=2, h=70, w=50):
    """Backbone-like features of an odd-sized image at strides 4..32."""
    torch.manual_seed(0)
    sizes = [(-(-h // s), -(-w // s)) for s in (4, 8, 16, 32)]
    return [torch.randn(b, c, *hw) for c, hw in zip(CH, sizes)]


def det_samples(b=2, h=70, w=50, num_classes=4):
    out = []
    for i in range(b):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                                        ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        masks = torch.zeros(2, h, w, dtype=torch.bool)
        masks[0, :30, :20] = True
        masks[1, 35:, 10:40] = True
        s.gt_instances = InstanceData(labels=torch.tensor([i % num_classes, 2]), masks=BitmapMasks(masks.numpy(), h, w),
                                      bboxes=torch.tensor([[0., 0., 20., 30.], [10., 35., 40., 70.]]))
        out.append(s)
    return out


def test_query_grid():
    assert query_grid(100) == (10, 10) and query_grid(6) == (2, 3) and query_grid(7) == (1, 7)


def test_decoder_uses_recurrent_clustering_and_encoder_centres():
    head = ClusterFormerHead(num_things_classes=3, num_stuff_classes=1, num_iters=3, **head_kwargs())
    assert all(isinstance(layer.cross_attn, RecurrentClusteringCrossAttention)
               for layer in head.transformer_decoder.layers)
    assert head.query_feat is None and head.query_clustering.num_centers == (2, 3)
    x = feats()
    with recording_clusters(head) as records:
        cls_list, mask_list = head(x, det_samples())
    assert len(cls_list) == len(mask_list) == 3
    assert cls_list[-1].shape == (2, 6, 5) and mask_list[-1].shape == (2, 6, 18, 13)
    # the encoder-centre clustering and every decoder layer record T = 3 soft E-steps on their memory grid
    names = sorted({r.name for r in records})
    assert names == ['query_clustering', 'transformer_decoder.layers.0.cross_attn.clustering',
                     'transformer_decoder.layers.1.cross_attn.clustering']
    dec0 = [r for r in records if r.name.endswith('layers.0.cross_attn.clustering')]
    assert [r.step for r in dec0] == [0, 1, 2]
    assert dec0[0].kind == 'soft' and dec0[0].assignment.shape == (2, 4, 3 * 2, 6)  # stride-32 level: 3x2
    # softmax over the queries: each pixel's responsibilities sum to one
    torch.testing.assert_close(dec0[0].assignment.sum(-1), torch.ones(2, 4, 6))


def test_loss_backward_reaches_the_clustering_and_predict_instances():
    head = ClusterFormerHead(num_things_classes=3, num_stuff_classes=1, **head_kwargs(
        test_cfg=dict(panoptic_on=False, semantic_on=False, instance_on=True, max_per_image=5, iou_thr=0.8,
                      filter_low_score=True)))
    head.init_weights()
    x = feats()
    losses = head.loss(x, det_samples())
    assert {'loss_cls', 'loss_mask', 'loss_dice'} <= set(losses)
    total = sum(v for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    q = head.transformer_decoder.layers[0].cross_attn.clustering.q_proj.weight.grad
    assert q is not None and q.abs().sum() > 0
    assert head.query_clustering.center_ffn[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        cls, masks = head.predict(x, det_samples())
    assert cls.shape == (2, 6, 5) and masks.shape[-2:] == (70, 50)


def test_free_queries_and_switches():
    head = ClusterFormerHead(num_things_classes=3, num_stuff_classes=1, query_init='free', update='kmeans',
                             use_attn_mask=False, **head_kwargs(layers=1))
    assert head.query_feat.weight.shape == (6, FEAT) and not hasattr(head, 'query_clustering')
    assert head.transformer_decoder.layers[0].cross_attn.clustering.update == 'kmeans'
    cls_list, _ = head(feats(b=1), det_samples(b=1))
    assert cls_list[-1].shape == (1, 6, 5)
    with pytest.raises(ValueError, match="query_init must be one of \\('encoder', 'free'\\)"):
        ClusterFormerHead(num_things_classes=3, num_stuff_classes=1, query_init='anchors', **head_kwargs())


def test_seg_head_loss_and_semantic_logits():
    head = ClusterFormerSegHead(num_classes=4, **head_kwargs())
    x = feats()
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(70, 50), pad_shape=(70, 50)))
        sem = torch.full((1, 70, 50), 255, dtype=torch.long)
        sem[0, :40] = 1
        sem[0, 40:, :25] = 3
        s.gt_sem_seg = PixelData(data=sem)
        samples.append(s)
    losses = head.loss(x, samples, None)
    assert torch.isfinite(sum(v for v in losses.values()))
    with torch.no_grad():
        logits = head.predict(x, [s.metainfo for s in samples], None)
    assert logits.shape == (2, 4, 70, 50)
