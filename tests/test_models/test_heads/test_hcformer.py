"""HCFormer model parts: HCResNet hooks (DCNv2 downsampling as released, first-block outputs), HCSwinTransformer
(pre-norm stage outputs and PatchMerging outputs), HCFormerNeck's output contract and cluster records,
HCFormerHead (mmdet) and the mmseg heads, on tiny inputs (odd sizes included)."""
import numpy as np
import pytest
import torch

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

from mmdet.models.backbones import ResNet, SwinTransformer  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.mask import BitmapMasks  # noqa: E402
from mmengine.structures import InstanceData, PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmcluster.models.backbones.hc_resnet import DCNv2Downsample  # noqa: E402
from mmcluster.models.heads import HCFCNHead, HCFormerHead, HCFormerSegHead  # noqa: E402
from mmcluster.models.layers import hc_decode_hierarchy  # noqa: E402
from mmcluster.models.backbones import HCResNet, HCSwinTransformer  # noqa: E402
from mmcluster.models.necks import HCFeatures, HCFormerNeck  # noqa: E402
from mmcluster.models.utils.cluster_record import recording_clusters  # noqa: E402
from e2e import mask2former_train_cfg  # noqa: E402

CH18 = [64, 128, 256, 512]
FEAT = 32
TRAIN_CFG = mask2former_train_cfg(256, scope='')
# mmseg configs name mmdet's task utils with their scope, as mmseg's own Mask2Former configs do
TRAIN_CFG_MMSEG = mask2former_train_cfg(256)


def decoder(layers=2, d=FEAT):
    attn = dict(embed_dims=d, num_heads=4, dropout=0.0, batch_first=True)
    return dict(return_intermediate=True, num_layers=layers, layer_cfg=dict(
        self_attn_cfg=attn, cross_attn_cfg=attn,
        ffn_cfg=dict(embed_dims=d, feedforward_channels=64, num_fcs=2, ffn_drop=0.0)))


def head_kwargs(num_classes=4, **kw):
    args = dict(in_channels=CH18, feat_channels=FEAT, out_channels=FEAT, num_queries=6,
                transformer_decoder=decoder(), positional_encoding=dict(num_feats=FEAT // 2, normalize=True),
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, reduction='mean',
                              class_weight=[1.0] * num_classes + [0.1]),
                train_cfg=TRAIN_CFG)
    args.update(kw)
    return args


@pytest.fixture(autouse=True)
def toolkit_scope(request):
    """Unscoped types resolve in the toolkit under test (mmseg for the seg heads, else mmdet), whatever
    default scope an earlier test left behind."""
    from mmengine.registry import DefaultScope
    scope = 'mmseg' if 'seg_head' in request.node.name else 'mmdet'
    with DefaultScope.overwrite_default_scope(scope):
        yield


@pytest.fixture(scope='module')
def feats():
    """Backbone outputs of an odd-sized 2x3x100x70 image: strides 4..32 = 25x18, 13x9, 7x5, 4x3."""
    torch.manual_seed(0)
    backbone = HCResNet(depth=18, dcn_downsampling=True, first_block_outs=True)
    backbone.eval()  # (mmdet's ResNet.train returns None: no chaining)
    with torch.no_grad():
        return backbone(torch.randn(2, 3, 100, 70))


def test_hcresnet_dcn_and_first_block_outputs(feats):
    torch.manual_seed(0)
    plain = ResNet(depth=18)
    hc = HCResNet(depth=18, dcn_downsampling=True, first_block_outs=True)
    plain.eval()
    hc.eval()
    hc.init_weights()
    # checkpoints of the plain ResNet load: only the deformable layers' biases and offset/mask convs are missing
    missing, unexpected = hc.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected
    assert sorted(missing) == sorted(
        f'layer{n}.0.{m}.{p}' for n in (2, 3, 4) for m in ('conv1', 'downsample.0')
        for p in ('bias', 'conv_offset.weight', 'conv_offset.bias'))
    for n in (2, 3, 4):
        block = getattr(hc, f'layer{n}')[0]
        for dcn, k in ((block.conv1, 3), (block.downsample[0], 1)):
            assert isinstance(dcn, DCNv2Downsample) and dcn.kernel_size == (k, k)
            # official DeformConv: offsets + mask from a 3x3, padding-1 conv with the layer's stride, 3 k^2 outputs
            off = dcn.conv_offset
            assert (off.kernel_size, off.padding, off.stride, off.out_channels) == ((3, 3), (1, 1), (2, 2), 3 * k * k)
            assert off.weight.abs().sum() == 0 and dcn.bias.abs().sum() == 0  # zero-init survives init_weights
    assert not isinstance(hc.layer1[0].conv1, DCNv2Downsample)
    # zero offsets and mask sigmoid(0) = 0.5: half the plain strided convolution
    x = torch.randn(1, 64, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(hc.layer2[0].conv1(x), 0.5 * plain.layer2[0].conv1(x), rtol=1e-4, atol=1e-5)
        outs = hc(torch.randn(1, 3, 64, 96))
    assert len(outs) == 7
    with torch.no_grad():
        for l in range(3):  # b_{l+1} = layer_{l+1}[0](res_l), same size and channels as res_{l+1}
            torch.testing.assert_close(outs[4 + l], getattr(hc, f'layer{l + 2}')[0](outs[l]))
            assert outs[4 + l].shape == outs[l + 1].shape
    assert [tuple(f.shape[-2:]) for f in feats[:4]] == [(25, 18), (13, 9), (7, 5), (4, 3)]
    with pytest.raises(ValueError, match='out_indices'):
        HCResNet(depth=18, out_indices=(3, ), first_block_outs=True)
    with pytest.raises(ValueError, match=r'valid depths: \[18, 34, 50, 101, 152\]'):
        HCResNet(depth=20)


def bilinear(x, y, xx):
    """x[:, y, xx] with bilinear interpolation, zero outside the map (float coordinates)."""
    h, w = x.shape[-2:]
    y0, x0 = int(np.floor(y)), int(np.floor(xx))
    out = torch.zeros(x.shape[0], dtype=x.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xc, wx in ((x0, 1 - (xx - x0)), (x0 + 1, xx - x0)):
            if 0 <= yy < h and 0 <= xc < w:
                out += wy * wx * x[:, yy, xc]
    return out


def test_dcn_shortcut_samples_where_its_3x3_offset_conv_says():
    """The 1x1 stride-2 shortcut with learnt offsets against a slow DCNv2 reference: out(p) = m(p) W x(2p +
    delta(p)) + b, with (delta_y, delta_x, m_logit) predicted by the 3x3 padding-1 stride-2 offset conv."""
    torch.manual_seed(0)
    dcn = DCNv2Downsample(4, 5, 1, stride=2, padding=0).double()
    with torch.no_grad():
        dcn.conv_offset.weight.normal_(0, 0.3)
        dcn.conv_offset.bias.normal_(0, 0.3)
        dcn.bias.normal_()
    x = torch.randn(1, 4, 7, 6, dtype=torch.float64)
    with torch.no_grad():
        out = dcn(x)
        om = torch.nn.functional.conv2d(x, dcn.conv_offset.weight, dcn.conv_offset.bias, stride=2, padding=1)
    assert out.shape == (1, 5, 4, 3)
    ref = torch.zeros_like(out)
    for i in range(4):
        for j in range(3):
            dy, dx, m = om[0, 0, i, j].item(), om[0, 1, i, j].item(), torch.sigmoid(om[0, 2, i, j]).item()
            v = bilinear(x[0], 2 * i + dy, 2 * j + dx)
            ref[0, :, i, j] = m * (dcn.weight[:, :, 0, 0] @ v) + dcn.bias
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-8)


def test_hcresnet_frozen_stages_and_norm_eval():
    hc = HCResNet(depth=18, dcn_downsampling=True, frozen_stages=2, norm_eval=True)
    hc.train()
    for name, p in hc.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1', 'layer2'))
        assert p.requires_grad != frozen, name
    assert not hc.layer2[0].conv1.conv_offset.training and not hc.layer3[0].bn1.training


def test_hcswin_pairs_are_prenorm_stage_outputs_and_patch_merging():
    torch.manual_seed(0)
    swin = HCSwinTransformer(embed_dims=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), window_size=3,
                             out_indices=(0, 1, 2, 3))
    swin.eval()  # (mmdet's Swin.train returns None: no chaining)
    img = torch.randn(1, 3, 100, 70)
    with torch.no_grad():
        outs = swin(img)
        plain = SwinTransformer.forward(swin, img)  # mmdet's forward: the normalised stage outputs
    assert len(outs) == 10
    for a, b in zip(outs[:4], plain):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        for i in range(3):
            pre, down = outs[4 + i], outs[7 + i]
            tokens = pre.flatten(2).transpose(1, 2)
            norm = getattr(swin, f'norm{i}')
            torch.testing.assert_close(norm(tokens).transpose(1, 2).reshape(pre.shape), outs[i])
            merged, hw = swin.stages[i].downsample(tokens, pre.shape[-2:])
            torch.testing.assert_close(merged.transpose(1, 2).reshape(down.shape), down)
            assert tuple(down.shape[-2:]) == tuple(outs[i + 1].shape[-2:]) and down.shape[1] == 2 * pre.shape[1]
        neck = HCFormerNeck([8, 16, 32, 64], level=3, embed_dims=8, coarse_inputs='patch_merging')
        x = neck(outs)
    assert [tuple(a.shape[-2:]) for a in x.assigns] == [(7, 5), (13, 9), (25, 18)]
    assert x.feat is outs[3]
    with torch.no_grad():
        plain = HCSwinTransformer(embed_dims=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), pair_outs=False)
        assert len(plain(img)) == 4
    with pytest.raises(ValueError, match='out_indices'):
        HCSwinTransformer(embed_dims=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), out_indices=(3, ))


@pytest.mark.parametrize('level', [0, 1, 3])
@pytest.mark.parametrize('coarse_inputs', ['next_stage', 'first_block'])
def test_neck_contract(feats, level, coarse_inputs):
    neck = HCFormerNeck(CH18, level=level, embed_dims=16, coarse_inputs=coarse_inputs)
    out = neck(feats if coarse_inputs == 'first_block' else feats[:4])
    assert isinstance(out, HCFeatures) and isinstance(out, tuple)
    assert out.feat is feats[3]
    sizes = [(7, 5), (13, 9), (25, 18)][:level]  # coarse-to-fine
    assert [tuple(a.shape) for a in out.assigns] == [(2, 9) + s for s in sizes]
    assert [s is m.scale for s, m in zip(out.scales, neck.clustering_layers)] == [True] * level
    mask = torch.randn(2, 5, 4, 3)
    assert hc_decode_hierarchy(mask, out.assigns).shape[-2:] == ([(4, 3)] + sizes)[-1]
    with pytest.raises(ValueError, match='backbone outputs'):
        neck(feats[:3])
    with pytest.raises(ValueError, match='level'):
        HCFormerNeck(CH18, level=4)
    with pytest.raises(ValueError, match="'next_stage', 'first_block', 'patch_merging'"):
        HCFormerNeck(CH18, coarse_inputs='merged')


def test_neck_cluster_records_link_levels(feats):
    """One hard record per level, coarse-to-fine, each naming the next-coarser level as its parent; composing
    the records gives the same partitions as decoding one-hot cluster indicators (Eq. 5)."""
    from mmcluster.models.layers.hc_decode import hc_partitions
    neck = HCFormerNeck(CH18, level=3, embed_dims=16, coarse_inputs='first_block')
    model = torch.nn.ModuleDict(dict(neck=neck))
    with torch.no_grad(), recording_clusters(model) as records:
        x = model['neck'](feats)
    assert [r.name for r in records] == [f'neck.clustering_layers.{l}' for l in range(3)]
    assert [r.parent for r in records] == [None, 'neck.clustering_layers.0', 'neck.clustering_layers.1']
    assert [r.spatial_shape for r in records] == [(7, 5), (13, 9), (25, 18)]
    assert [r.cluster_shape for r in records] == [(4, 3), (7, 5), (13, 9)]
    label = records[-1].labels()  # compose: finest pixels -> stride-8 cells -> stride-16 cells -> stride-32 cells
    composed = [label]
    for rec in records[-2::-1]:
        label = torch.gather(rec.labels().flatten(1), 1, label.flatten(1)).view_as(label)
        composed.insert(0, label)
    for ours, ref in zip(composed, hc_partitions(x.assigns)):
        assert torch.equal(ours, ref)


def test_neck_hcformer_plus_encoder(feats):
    enc_attn = dict(embed_dims=FEAT, num_heads=4, dropout=0.1, batch_first=True)
    neck = HCFormerNeck(CH18, level=3, encoder=dict(num_layers=2, layer_cfg=dict(
        self_attn_cfg=enc_attn, ffn_cfg=dict(embed_dims=FEAT, feedforward_channels=64, ffn_drop=0.1))),
        encoder_num_groups=8)
    neck.init_weights()
    out = neck(feats[:4])
    assert neck.out_channels == FEAT and out.feat.shape == (2, FEAT, 4, 3)
    assert len(neck.encoder.layers) == 2 and len(out.assigns) == 3


def det_samples(n=2, hw=(100, 70), num_things=3):
    samples = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(batch_input_shape=hw, img_shape=hw, pad_shape=hw, ori_shape=hw,
                                        scale_factor=(1.0, 1.0)))
        masks = np.zeros((2, *hw), dtype=np.uint8)
        masks[0, 10:50, 5:40] = 1
        masks[1, 60:90, 30:65] = 1
        s.gt_instances = InstanceData(labels=torch.tensor([i % num_things, 2]), masks=BitmapMasks(masks, *hw))
        sem = torch.full((1, *hw), 255, dtype=torch.long)
        sem[:, :, 50:] = 3  # a stuff class
        s.gt_sem_seg = PixelData(sem_seg=sem)
        samples.append(s)
    return samples


def test_head_forward_loss_predict(feats):
    torch.manual_seed(0)
    neck = HCFormerNeck(CH18, level=3, embed_dims=16, coarse_inputs='first_block')
    head = HCFormerHead(num_things_classes=3, num_stuff_classes=1, **head_kwargs(
        4, loss_scale=dict(type='HCScaleLoss', loss_weight=0.1, mode='sum_of_abs')))
    head.init_weights()
    x = neck(feats)
    cls, masks = head(x, decode='all')
    assert len(cls) == len(masks) == 3  # initial prediction + 2 layers
    assert all(c.shape == (2, 6, 5) for c in cls)
    assert all(m.shape == (2, 6, 25, 18) for m in masks)  # stride 4 of the 100x70 input
    head.eval()
    cls, masks = head(x)  # eval: only the last prediction is decoded
    assert [tuple(m.shape[-2:]) for m in masks] == [(4, 3), (4, 3), (25, 18)]
    head.train()

    with torch.no_grad():
        neck.clustering_layers[1].scale.fill_(-0.05)
    losses = head.loss(neck(feats), det_samples())
    assert {'loss_cls', 'loss_mask', 'loss_dice', 'd0.loss_mask', 'd1.loss_dice', 'loss_hc_scale'} <= set(losses)
    assert losses['loss_hc_scale'].item() == pytest.approx(0.1 * (0.1 + 0.05 + 0.1))  # sum of |s|
    head.loss_scale.mode = 'abs_of_sum'
    losses = head.loss(neck(feats), det_samples())
    assert losses['loss_hc_scale'].item() == pytest.approx(0.1 * (0.1 - 0.05 + 0.1))  # |sum of s|
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for name, p in neck.named_parameters():  # the mask losses reach every clustering module
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert head.query_feat.weight.grad.abs().sum() > 0

    head.eval()
    with torch.no_grad():
        cls, mask = head.predict(neck(feats), det_samples())
    assert cls.shape == (2, 6, 5) and mask.shape == (2, 6, 100, 70)


def test_head_without_scales_and_contract_errors(feats):
    head = HCFormerHead(num_things_classes=3, num_stuff_classes=1, **head_kwargs(4))
    x = HCFormerNeck(CH18, level=2)(feats[:4])
    assert 'loss_hc_scale' not in head.loss((x.feat, x.assigns), det_samples())
    with pytest.raises(TypeError, match='HCFormerNeck'):
        head(feats[:4])  # a plain backbone output
    with pytest.raises(ValueError, match='pixel decoder'):
        HCFormerHead(num_things_classes=3, num_stuff_classes=1,
                     **head_kwargs(4, pixel_decoder=dict(type='MSDeformAttnPixelDecoder')))
    with pytest.raises(ValueError, match='mode must be one of'):
        HCFormerHead(num_things_classes=3, num_stuff_classes=1,
                     **head_kwargs(4, loss_scale=dict(type='HCScaleLoss', mode='l2')))
    no_reg = HCFormerHead(num_things_classes=3, num_stuff_classes=1, **head_kwargs(4, loss_scale=None))
    assert 'loss_hc_scale' not in no_reg.loss(x, det_samples())


def test_fully_masked_queries_are_reset(feats):
    """If a query's mask is negative everywhere its attention row would be all masked (NaN): reset it."""
    head = HCFormerHead(num_things_classes=3, num_stuff_classes=1, **head_kwargs(4)).eval()
    with torch.no_grad():
        head.mask_proj.weight.zero_()
        head.mask_proj.bias.fill_(-1.0)
        last = head.mask_embed[-1]
        last.weight.zero_()
        last.bias.fill_(10.0)  # mask logits = -10 * FEAT < 0 everywhere
        cls, masks = head(HCFormerNeck(CH18, level=1)(feats[:4]))
    assert all(torch.isfinite(c).all() for c in cls)


def seg_samples(hw=(100, 70)):
    samples = []
    for _ in range(2):
        sem = torch.full((1, *hw), 255, dtype=torch.long)
        sem[:, :40] = 1
        sem[:, 40:, :30] = 4
        s = SegDataSample(metainfo=dict(img_shape=hw, pad_shape=hw, ori_shape=hw))
        s.gt_sem_seg = PixelData(data=sem)
        samples.append(s)
    return samples


def test_seg_head_and_hc_fcn(feats):
    torch.manual_seed(0)
    neck = HCFormerNeck(CH18, level=3, coarse_inputs='first_block')
    x = neck(feats)
    head = HCFormerSegHead(num_classes=6, **head_kwargs(
        6, train_cfg=TRAIN_CFG_MMSEG,
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                      reduction='mean', class_weight=[1.0] * 6 + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                       naive_dice=True, eps=1.0, loss_weight=5.0)))
    assert head.out_channels == 6 and head.num_classes == 6
    losses = head.loss(x, seg_samples(), None)
    assert 'loss_hc_scale' in losses and torch.isfinite(losses['loss_mask'])
    head.eval()
    with torch.no_grad():
        logits = head.predict(x, [s.metainfo for s in seg_samples()], None)
    assert logits.shape == (2, 6, 100, 70)

    fcn = HCFCNHead(in_channels=512, channels=32, num_convs=1, num_classes=6, concat_input=False,
                    norm_cfg=dict(type='BN', requires_grad=True))
    assert fcn(x).shape == (2, 6, 25, 18)  # stride-32 logits decoded to stride 4
    losses = fcn.loss(x, seg_samples(), None)
    assert set(losses) >= {'loss_ce', 'acc_seg', 'loss_hc_scale'}
    losses['loss_ce'].backward()
    assert neck.clustering_layers[2].fine_emb.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='in_index'):
        HCFCNHead(in_channels=512, channels=32, num_classes=6, in_index=3)


@pytest.mark.parametrize('backbone', ['swin', 'context_cluster'])
def test_neck_on_other_backbones(backbone):
    """Any backbone whose levels halve with ceil (padded stride-2 downsampling / patch merging) plugs in."""
    from mmdet.models.backbones import SwinTransformer

    from mmcluster.models.backbones import ContextCluster
    torch.manual_seed(0)
    model = (SwinTransformer(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), out_indices=(0, 1, 2, 3))
             if backbone == 'swin' else ContextCluster(arch='tiny', out_indices=(0, 1, 2, 3)))
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 100, 70))
        x = HCFormerNeck([o.shape[1] for o in outs], level=3)(outs)
    assert [tuple(a.shape[-2:]) for a in x.assigns] == [(7, 5), (13, 9), (25, 18)]
