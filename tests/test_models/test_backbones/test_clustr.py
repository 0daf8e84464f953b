"""ClusTR backbone: any input size, out_indices, bf16, gradients, published parameter counts, registry,
backbone conventions (frozen_stages, norm_eval, arch errors) and cluster records."""
import importlib

import pytest
import torch
from e2e import published

from mmcluster.models.backbones.clustr import ARCH_SETTINGS, ClusTR
from mmcluster.models.utils.cluster_record import recording_clusters

PUBLISHED = published('clustr')

TINY_ARCH = dict(depths=[1, 1, 1, 1], embed_dims=[8, 16, 16, 32], num_heads=[1, 2, 2, 4],
                 ratios=[[16, 4], [4, 2], [2, 1], [1]], mlp_ratios=[2, 2, 2, 2])


def _stage_sizes(h, w, n=4):
    sizes = [(-(-h // 4), -(-w // 4))]
    for _ in range(n - 1):
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    return sizes


@pytest.mark.parametrize('size', [(97, 131), (64, 64), (33, 47), (5, 3), (1, 1)])
def test_any_size_shapes(size):
    torch.manual_seed(0)
    model = ClusTR(TINY_ARCH).eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert len(outs) == 4
    for out, c, hw in zip(outs, TINY_ARCH['embed_dims'], _stage_sizes(*size)):
        assert out.shape == (1, c, *hw)
        assert bool(torch.isfinite(out).all())


def test_out_indices_and_batch():
    model = ClusTR(TINY_ARCH, out_indices=(1, -1), multiscale='concat').eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 70, 45))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 9, 6), (2, 32, 3, 2)]
    # batch items are clustered independently: batch of two == two batches of one
    x = torch.randn(2, 3, 40, 52)
    with torch.no_grad():
        both = model(x)
        single = model(x[1:])
    torch.testing.assert_close(both[1][1:], single[1], rtol=1e-4, atol=1e-5)


def test_real_tiny_arch_odd_size():
    model = ClusTR('tiny', out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 25, 33), (1, 128, 13, 17), (1, 256, 7, 9), (1, 512, 4, 5)]


def test_bf16_autocast_no_nan():
    torch.manual_seed(1)
    model = ClusTR(TINY_ARCH).eval()
    model.init_weights()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(1, 3, 61, 83))
    assert all(bool(torch.isfinite(o.float()).all()) for o in outs)


def test_gradients_reach_every_parameter():
    torch.manual_seed(2)
    model = ClusTR(TINY_ARCH, drop_path_rate=0.).train()  # no randomly dropped branch
    model.init_weights()
    outs = model(torch.randn(2, 3, 64, 80))
    sum(o.square().mean() for o in outs).backward()
    names = [n for n, _ in model.named_parameters()]
    assert any('attn.score' in n for n in names)
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert bool(p.grad.abs().sum() > 0), name


def layout_params(arch, in_channels=3, num_classes=1000):
    """Parameters of the layout described in docs/clustr.md, counted by hand (not from the module):
    overlapped patch embedding (conv k x k + bias, LN), per block LN, q (C -> C), one full K/V Linear (C -> 2C)
    per scale, one score column per clustered scale (lambda > 1), proj (C -> C), LN, FFN (fc1 C -> rC,
    depthwise 3x3 conv, fc2 rC -> C), a stage LN; GAP + Linear head."""
    total, c_in = 0, in_channels
    for i, (depth, C, ratios, r) in enumerate(zip(arch['depths'], arch['embed_dims'], arch['ratios'],
                                                 arch.get('mlp_ratios', [8, 8, 4, 4]))):
        k = 7 if i == 0 else 3
        total += c_in * C * k * k + C + 2 * C
        n_scales, n_clustered, hidden = len(ratios), sum(1 for x in ratios if x > 1), int(C * r)
        block = 2 * C + (C * C + C) + n_scales * (2 * C * C + 2 * C) + (C + 1) * n_clustered + (C * C + C)
        block += 2 * C + (C * hidden + hidden) + (9 * hidden + hidden) + (hidden * C + C)
        total += depth * block + 2 * C
        c_in = C
    return total + c_in * num_classes + num_classes


def _count_with_head(model, num_classes=1000):
    backbone = sum(p.numel() for p in model.parameters())
    return backbone + model.embed_dims[-1] * num_classes + num_classes  # GAP + LinearClsHead


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_parameter_counts_match_paper(arch):
    published = PUBLISHED['imagenet'][arch]['params']
    count = _count_with_head(ClusTR(arch))
    assert count == layout_params(ARCH_SETTINGS[arch])
    assert round(count / 1e6, 1) == published  # ClusTR-B: 40.2 in Table 1 (40.3 in the abstract)


@pytest.mark.parametrize('name', ['single_scale_64_16_4_1', 'single_scale_16_4_1_1', 'multi_scale'])
def test_parameter_counts_of_the_ablation_models(name):
    entry = PUBLISHED['ablation_tiny'][name]
    arch = dict(ARCH_SETTINGS['tiny'], ratios=entry['ratios'])
    count = _count_with_head(ClusTR(arch))
    assert count == layout_params(arch)
    assert round(count / 1e6, 1) == entry['params']


def test_parameter_count_with_mmpretrain_classifier():
    pytest.importorskip('mmpretrain.models')
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = dict(type='ImageClassifier', backbone=dict(type='ClusTR', arch='tiny'),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=1000, in_channels=512))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    assert sum(p.numel() for p in model.parameters()) == layout_params(ARCH_SETTINGS['tiny'])


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_every_arch_odd_size_batch_one_backward(arch):
    torch.manual_seed(3)
    model = ClusTR(arch, drop_path_rate=0.).train()
    model.init_weights()
    outs = model(torch.randn(1, 3, 67, 45))
    assert [tuple(o.shape[2:]) for o in outs] == [(17, 12), (9, 6), (5, 3), (3, 2)]
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_arch_settings_follow_table_a1():
    assert ARCH_SETTINGS['tiny']['depths'] == [1, 2, 6, 1]
    assert ARCH_SETTINGS['small']['depths'] == [3, 5, 13, 2]
    assert ARCH_SETTINGS['base']['depths'] == [3, 5, 18, 3]
    assert ARCH_SETTINGS['base']['embed_dims'] == [64, 128, 320, 512]
    assert ARCH_SETTINGS['base']['num_heads'] == [1, 2, 5, 8]
    model = ClusTR('s')
    attn = model.stages[0][0].attn
    assert attn.ratios == (64, 16) and len(attn.kv) == 2 and attn.kv[1].out_features == 128
    assert model.stages[3][0].attn.ratios == (1, ) and model.stages[3][0].attn.score is None


def test_errors():
    with pytest.raises(ValueError, match=r"'base'.*'small'.*'tiny'"):
        ClusTR('huge')
    with pytest.raises(ValueError, match=r"'base'.*'small'.*'tiny'"):
        ClusTR(3)
    with pytest.raises(ValueError, match='missing keys'):
        ClusTR(dict(depths=[1]))
    with pytest.raises(ValueError, match='embed_dims has 1 entries'):
        ClusTR(dict(TINY_ARCH, embed_dims=[8]))
    with pytest.raises(ValueError, match='out_indices'):
        ClusTR(TINY_ARCH, out_indices=(4, ))
    with pytest.raises(ValueError, match=r'frozen_stages must be an int in \[-1, 3\]'):
        ClusTR(TINY_ARCH, frozen_stages=4)
    with pytest.raises(ValueError, match="assign must be one of"):
        ClusTR(TINY_ARCH, assign='nearest')
    model = ClusTR(TINY_ARCH)
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        model(torch.randn(3, 32, 32))


def test_frozen_stages_and_norm_eval():
    model = ClusTR(TINY_ARCH, frozen_stages=1, norm_eval=True)
    model.train()
    for i in range(4):
        frozen = i <= 1
        for m in (model.patch_embeds[i], model.stages[i], model.norms[i]):
            assert all(p.requires_grad is not frozen for p in m.parameters()), i
        if frozen:
            assert not any(sub.training for sub in model.stages[i].modules())
        assert model.stages[i][0].attn.training is not frozen and model.patch_embeds[i].proj.training is not frozen
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(not m.training for m in norms)
    assert model.stages[2][0].attn.training  # the rest trains
    outs = model(torch.randn(1, 3, 40, 36))
    sum(o.sum() for o in outs).backward()
    assert model.patch_embeds[0].proj.weight.grad is None and model.stages[2][0].attn.q.weight.grad is not None
    model.eval()
    model.train()  # re-applied
    assert not model.stages[1][0].training and model.stages[2][0].training
    assert all(p.requires_grad for p in ClusTR(TINY_ARCH).parameters())


def test_cluster_records_on_the_stage_grids():
    torch.manual_seed(4)
    model = ClusTR(TINY_ARCH).eval()  # ratios [[16, 4], [4, 2], [2, 1], [1]]
    with torch.no_grad(), recording_clusters(model) as records:
        model(torch.randn(2, 3, 50, 37))
    grids = [(13, 10), (7, 5), (4, 3)]
    expected = [(f'stages.{i}.0.attn', j, r, grids[i]) for i, ratios in enumerate(TINY_ARCH['ratios'])
                for j, r in enumerate(ratios) if r > 1]
    assert [(r.name, r.step, r.meta['ratio'], r.spatial_shape) for r in records] == expected
    for r in records:
        n = r.spatial_shape[0] * r.spatial_shape[1]
        assert r.kind == 'hard' and r.assignment.shape == (2, n) and r.assignment.dtype == torch.long
        assert r.num_clusters == -(-n // r.meta['ratio'])
        assert int(r.assignment.max()) < r.num_clusters and r.labels().shape == (2, *r.spatial_shape)
        for b in range(2):  # every cluster has at least its centre
            assert r.assignment[b].unique().numel() == r.num_clusters
    per_head = ClusTR(TINY_ARCH, cluster_per_head=True, assign='parent').eval()
    with torch.no_grad(), recording_clusters(per_head) as records:
        per_head(torch.randn(1, 3, 50, 37))
    assert records[2].name == 'stages.1.0.attn' and records[2].assignment.shape == (1, 2, 35)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_registry_build_under_toolkit_scopes(scope):
    pytest.importorskip(f'{scope}.models')
    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(dict(type='ClusTR', arch=TINY_ARCH))
        scoped = registry.build(dict(type='mmcluster.ClusTR', arch=TINY_ARCH))
    assert type(model) is ClusTR and type(scoped) is ClusTR


def test_registry_build_mmcluster_scope():
    from mmcluster.registry import MODELS
    model = MODELS.build(dict(type='ClusTR', arch=TINY_ARCH, out_indices=(3, )))
    assert isinstance(model, ClusTR) and model.out_indices == (3, )
