"""ContextCluster backbone: parameter counts and keys of the official models, any input size, conventions."""
import math
from pathlib import Path

import pytest
import torch
from e2e import nparams
from e2e import published as published_numbers

from mmcluster.models.backbones.context_cluster import ContextCluster
from mmcluster.models.layers.context_cluster import ContextClusterLayer

DATA = Path(__file__).resolve().parents[2] / 'data'
# small custom arch for the behaviour tests (stays fast on one core)
MINI = dict(layers=[1, 1, 2, 1], embed_dims=[8, 16, 24, 32], mlp_ratios=[2, 2, 2, 2], heads=[2, 2, 2, 2],
            head_dim=4, proposal=2, fold=[8, 4, 2, 1])


@pytest.fixture(scope='module')
def official():
    """Stored outputs of the official code (tools/parity/make_coc_fixture.py)."""
    return torch.load(DATA / 'fixtures/coc_official.pt', weights_only=True)


@pytest.fixture(scope='module')
def published():
    return published_numbers('context_cluster')


def _classifier_params(arch):
    """Parameters of backbone -> GlobalAveragePooling -> LinearClsHead(1000); mmpretrain's own classes if present."""
    try:
        import mmpretrain  # noqa: F401
    except ImportError:
        backbone = ContextCluster(arch)
        c3 = backbone.embed_dims[-1]
        return nparams(backbone) + c3 * 1000 + 1000  # LinearClsHead = one Linear(C3, 1000)
    import mmcluster  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # not whatever scope an earlier test left
        model = PRETRAIN_MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type='ContextCluster', arch=arch),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=1000,
                           in_channels=ContextCluster.arch_settings[arch]['embed_dims'][-1])))
    return nparams(model)


@pytest.mark.parametrize('arch', ['tiny', 'tiny2', 'tiny_plain', 'small', 'medium'])
def test_parameter_count_matches_official(arch, official, published):
    n = _classifier_params(arch)
    assert n == official['param_counts'][arch]  # counted on the official model definition
    # the paper's "M" is 2**20 parameters (Table 1: 5.3 / 14.0 / 27.9)
    assert round(n / published['params_unit'], 1) == published['imagenet'][arch]['params']


def test_keys_and_shapes_match_the_official_classifier(official):
    """Our classifier keys = official ``coc_tiny`` keys, with its ``norm.`` named ``norm6.`` and mmpretrain's head."""
    ours = {k: list(v.shape) for k, v in ContextCluster('tiny').state_dict().items()}
    expected = {('norm6.' + k[5:] if k.startswith('norm.') else k): v for k, v in official['tiny_keys'].items()
                if not k.startswith('head.')}
    assert ours == expected
    a, b = ContextCluster('tiny').state_dict(), ContextCluster('tiny2').state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def test_official_key_names():
    keys = set(ContextCluster(MINI, out_indices=(0, 1, 2, 3)).state_dict())
    for k in ['patch_embed.proj.weight', 'network.1.proj.weight', 'network.3.proj.bias', 'network.5.proj.weight',
              'network.0.0.norm1.weight', 'network.4.1.norm2.bias', 'network.2.0.token_mixer.f.weight',
              'network.2.0.token_mixer.v.bias', 'network.6.0.token_mixer.proj.weight',
              'network.6.0.token_mixer.sim_alpha', 'network.6.0.token_mixer.sim_beta', 'network.0.0.mlp.fc1.weight',
              'network.0.0.mlp.fc2.bias', 'network.0.0.layer_scale_1', 'network.0.0.layer_scale_2', 'norm0.weight',
              'norm2.weight', 'norm4.weight', 'norm6.bias']:
        assert k in keys, k
    model = ContextCluster(MINI)
    assert model.state_dict()['network.0.0.mlp.fc1.weight'].dim() == 2
    assert not any(k.startswith(('norm0', 'norm2', 'norm4')) for k in model.state_dict())


@pytest.mark.parametrize('size', [(224, 224), (250, 333), (97, 131), (33, 33), (1, 1)])
def test_any_size_multiscale_shapes(size):
    torch.manual_seed(0)
    model = ContextCluster(MINI, out_indices=(0, 1, 2, 3)).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == 4
    for out, stride, c in zip(outs, (4, 8, 16, 32), MINI['embed_dims']):
        assert out.shape == (1, c, math.ceil(size[0] / stride), math.ceil(size[1] / stride))
        assert torch.isfinite(out).all()


def test_real_arch_odd_size_and_batch():
    torch.manual_seed(0)
    model = ContextCluster('tiny', out_indices=(1, 3)).eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        a, b = model(x)
        single = model(x[1:])
    assert a.shape == (2, 64, 13, 17) and b.shape == (2, 320, 4, 5)
    torch.testing.assert_close(single[1], b[1:], rtol=1e-4, atol=1e-5)  # batch items independent


def test_bf16_autocast_no_nan():
    torch.manual_seed(0)
    model = ContextCluster(MINI, out_indices=(0, 1, 2, 3)).eval()
    x = torch.randn(1, 3, 70, 45)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    for out in outs:
        assert torch.isfinite(out.float()).all()


def test_last_row_and_column_are_used():
    """Sizes not divisible by 4 are padded before the stride-4 stem: no input pixel is ignored."""
    torch.manual_seed(0)
    model = ContextCluster(MINI).eval()
    x = torch.randn(1, 3, 37, 30)
    with torch.no_grad():
        ref = model(x)[0]
        for sl in [(Ellipsis, -1, slice(None)), (Ellipsis, slice(None), -1)]:
            x2 = x.clone()
            x2[sl] += 3.0
            assert not torch.allclose(model(x2)[0], ref)


def test_position_channels():
    x = torch.zeros(2, 3, 8, 5)
    pos = ContextCluster.position_channels(x, 5, 5)  # 8 rows of which 3 are padding
    assert pos.shape == (2, 2, 8, 5)
    torch.testing.assert_close(pos[0, 0, :, 0], torch.arange(8.) / 4 - 0.5)  # ramp continues past the border
    torch.testing.assert_close(pos[0, 1, 0], torch.tensor([-0.5, -0.25, 0., 0.25, 0.5]))
    assert (pos[:, 0] == pos[:, 0, :, :1]).all()  # channel 0 varies along H only
    single = ContextCluster.position_channels(torch.zeros(1, 3, 1, 1), 1, 1)
    assert single.abs().sum() == 0  # a side of length 1 sits at position 0 (no 0/0)


def test_input_checks():
    model = ContextCluster(MINI)
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match='3'):
        model(torch.randn(3, 32, 32))
    x = torch.randn(1, 3, 32, 32)
    x[0, 0, 3, 3] = float('nan')
    with pytest.raises(ValueError, match='NaN'):  # BaseBackbone's input check, always on
        model(x)


def test_arch_and_option_errors():
    with pytest.raises(ValueError, match="'huge'.*medium.*small.*tiny"):
        ContextCluster('huge')
    bad = dict(MINI)
    del bad['fold']
    with pytest.raises(ValueError, match='fold'):
        ContextCluster(bad)
    with pytest.raises(ValueError, match='bogus'):
        ContextCluster(MINI, norm_by='bogus')
    with pytest.raises(ValueError, match='out_indices'):
        ContextCluster(MINI, out_indices=(4, ))


def test_options_reach_the_layers():
    model = ContextCluster('small', proposal=5, norm_by='mask', drop_path_rate=0.3)
    mixers = [m for m in model.modules() if isinstance(m, ContextClusterLayer)]
    assert len(mixers) == 12
    assert all(m.proposal == (5, 5) and m.norm_by == 'mask' for m in mixers)
    assert [mixers[i].fold for i in (0, 2, 4, 10)] == [(8, 8), (4, 4), (2, 2), (1, 1)]  # layers 2,2,6,2
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for stage in model.network[::2] for b in stage]
    assert rates == pytest.approx([0.3 * k / 11 for k in range(12)])


def test_frozen_stages_and_gradients():
    torch.manual_seed(0)
    model = ContextCluster(MINI, out_indices=(0, 1, 2, 3), frozen_stages=0, drop_path_rate=0.2)
    model.train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.network[0].parameters())
    assert not model.network[0].training and model.network[2].training
    outs = model(torch.randn(2, 3, 40, 52))
    sum(o.square().mean() for o in outs).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads['network.2.0.token_mixer.sim_alpha'].abs() > 0
    assert model.network[0][0].token_mixer.f.weight.grad is None


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_registry_build_under_toolkit_scopes(scope):
    pytest.importorskip(scope)
    import importlib

    import mmcluster  # noqa: F401  (registers)
    from mmengine.registry import DefaultScope

    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(dict(type='ContextCluster', arch='tiny', out_indices=(0, 1, 2, 3)))
    assert isinstance(model, ContextCluster)
    from mmcluster.registry import MODELS
    assert MODELS.build(dict(type='ContextCluster', arch=MINI)).arch['layers'] == [1, 1, 2, 1]


def test_frozen_stages_survive_train_and_norm_eval():
    model = ContextCluster(MINI, out_indices=(0, 1), frozen_stages=1, norm_eval=True)
    model.train()
    frozen = [model.patch_embed, model.network[0], model.network[1], model.network[2], model.norm0, model.norm2]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(not m.training for m in frozen)
    assert model.network[4].training and all(p.requires_grad for p in model.network[4].parameters())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and not any(m.training for m in norms)  # norm_eval
    assert ContextCluster(MINI).train().network[0][0].norm1.training


def test_default_init_is_the_official_one():
    torch.manual_seed(0)
    model = ContextCluster('small')
    model.init_weights()
    fc = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Linear)])
    # timm's trunc_normal_(std=.02) as the official code: bounds +-2 absolute, i.e. practically a normal
    assert abs(fc.std().item() - 0.02) < 0.0005 and abs(fc.mean().item()) < 0.0005
    assert all(m.bias.abs().max() == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert model.network[0][0].layer_scale_1.eq(1e-5).all()


def _converted(tmp_path, norm_by, **kw):
    source = ContextCluster(MINI, out_indices=(0, 1, 2, 3), **kw)
    path = tmp_path / f'converted_{norm_by}.pth'
    torch.save(dict(state_dict=source.state_dict(), meta=dict(norm_by=norm_by)), path)
    return source, path


def test_pretrained_init_cfg_applies_the_recorded_norm_by(tmp_path):
    source, path = _converted(tmp_path, 'mask')
    model = ContextCluster(MINI, out_indices=(0, 1, 2, 3), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    assert model.norm_by == 'sim'  # nothing loaded yet
    model.init_weights()
    mixers = [m for m in model.modules() if isinstance(m, ContextClusterLayer)]
    assert model.norm_by == 'mask' and all(m.norm_by == 'mask' for m in mixers)
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # an explicit choice that contradicts the checkpoint's record is an error, not a silent mix
    conflicting = ContextCluster(MINI, out_indices=(0, 1, 2, 3), norm_by='sim',
                                 init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match="norm_by='sim'.*norm_by='mask'"):
        conflicting.init_weights()
    # classifier weights (norm6 only) into a dense backbone: the missing output norms are the only tolerance
    cls_path = tmp_path / 'cls.pth'
    torch.save(dict(state_dict=ContextCluster(MINI).state_dict(), meta=dict(norm_by='sim')), cls_path)
    ContextCluster(MINI, out_indices=(1, 2), init_cfg=dict(type='Pretrained', checkpoint=str(cls_path))).init_weights()
    wrong = ContextCluster(dict(MINI, heads=1), init_cfg=dict(type='Pretrained', checkpoint=str(cls_path)))
    with pytest.raises(ValueError, match='shape mismatches'):
        wrong.init_weights()


@pytest.mark.parametrize('arch', sorted(ContextCluster.arch_settings))
def test_every_arch_odd_size_batch1_backward(arch):
    torch.manual_seed(0)
    model = ContextCluster(arch, out_indices=(0, 1, 2, 3))
    model.init_weights()
    with torch.no_grad():  # LayerScale 1e-5 would make the token mixers' gradients vanish numerically
        for name, p in model.named_parameters():
            if 'layer_scale' in name:
                p.fill_(0.5)
    outs = model(torch.randn(1, 3, 67, 45))
    assert [tuple(o.shape[-2:]) for o in outs] == [(17, 12), (9, 6), (5, 3), (3, 2)]
    # a random projection: the mean of a GroupNorm output does not depend on its input
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
