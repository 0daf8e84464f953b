"""ClusTR backbone: any input size, out_indices, bf16, gradients, published parameter counts, registry."""
import importlib

import pytest
import torch

from mmcluster.models.backbones.clustr import ARCH_SETTINGS, ClusTR

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


def _count_with_head(model, num_classes=1000):
    backbone = sum(p.numel() for p in model.parameters())
    return backbone + model.embed_dims[-1] * num_classes + num_classes  # GAP + LinearClsHead


@pytest.mark.parametrize('arch,published', [('tiny', 11.7), ('small', 22.7), ('base', 40.2)])
def test_parameter_counts_match_paper(arch, published):
    model = ClusTR(arch)
    count = _count_with_head(model)
    expected = {'tiny': 11_682_740, 'small': 22_691_781, 'base': 40_247_050}[arch]
    assert count == expected
    assert abs(count / 1e6 - published) / published < 0.05
    assert round(count / 1e6, 1) == published


def test_parameter_count_with_mmpretrain_classifier():
    pytest.importorskip('mmpretrain.models')
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = dict(type='ImageClassifier', backbone=dict(type='ClusTR', arch='tiny'),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=1000, in_channels=512))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    assert sum(p.numel() for p in model.parameters()) == 11_682_740


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
    with pytest.raises(ValueError, match='missing keys'):
        ClusTR(dict(depths=[1]))
    with pytest.raises(ValueError, match='embed_dims has 1 entries'):
        ClusTR(dict(TINY_ARCH, embed_dims=[8]))
    with pytest.raises(ValueError, match='out_indices'):
        ClusTR(TINY_ARCH, out_indices=(4, ))
    model = ClusTR(TINY_ARCH)
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        model(torch.randn(3, 32, 32))


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
