"""ClusterFormer backbone: released parameter counts and outputs, any input size, house conventions."""
import gzip
import json
from pathlib import Path

import pytest
import torch

from conftest import load_tool
from e2e import nparams
from e2e import published as published_numbers
from mmcluster.models.backbones.clusterformer import ClusterFormer
from mmcluster.models.utils.cluster_record import recording_clusters

DATA = Path(__file__).resolve().parents[2] / 'data'
MINI = dict(layers=[1, 1, 1, 1], embed_dims=[8, 8, 16, 16], mlp_ratios=[1, 1, 1, 1], heads=[2, 2, 2, 2],
            head_dim=4, num_centers=2, windows=1, window_size=4, num_iters=2)


@pytest.fixture(scope='module')
def published():
    return published_numbers('clusterformer')


@pytest.fixture(scope='module')
def released():
    """Stored outputs of the released code (tools/parity/make_clusterformer_fixture.py)."""
    return torch.load(DATA / 'fixtures/clusterformer_backbone.pt', weights_only=True)


def _released_arch(cfg):
    return dict(layers=cfg['layers'], embed_dims=cfg['embed_dims'], mlp_ratios=cfg['mlp_ratios'],
                heads=cfg['heads'], head_dim=cfg['head_dim'],
                num_centers=[(w, h) for w, h in zip(cfg['center_w'], cfg['center_h'])],
                windows=[(w, h) for w, h in zip(cfg['window_w'], cfg['window_h'])], window_size=4,
                num_iters=cfg['num_clustering'])


@pytest.mark.parametrize('arch', ['tiny', 'small'])
def test_parameter_counts_equal_the_release(arch, published):
    n = nparams(ClusterFormer(arch, compat=True))
    assert n == published['release_backbone_params'][arch]
    # paper semantics: a full (E d)^2 query map per block instead of the head-shared d^2 one, and no
    # sim_alpha / sim_beta (cosine dispatch); everything else is the released parameter set
    a = ClusterFormer.arch_settings[arch]
    blocks = [(n_b, e * d) for n_b, e, d in zip(a['layers'], a['heads'], a['head_dim'])]
    q_full = sum(n_b * (inner * inner + inner) for n_b, inner in blocks)
    q_shared = sum(n_b * (32 * 32 + 32) for n_b, _ in blocks)
    assert nparams(ClusterFormer(arch)) == n + q_full - q_shared - 2 * sum(a['layers'])


def test_keys_and_shapes_match_the_released_tiny_through_the_converter():
    ref = json.loads(gzip.decompress((DATA / 'fixtures/clusterformer_tiny_keys.json.gz').read_bytes()))
    conv = load_tool('tools/model_converters/clusterformer2mmcluster.py')
    fake = {k: torch.zeros(v) for k, v in ref['keys'].items()}
    new, dropped = conv.convert(fake)
    assert not dropped
    ours = {'backbone.' + k: list(v.shape) for k, v in ClusterFormer('tiny', compat=True).state_dict().items()}
    assert {k: list(v.shape) for k, v in new.items() if k.startswith('backbone.')} == ours
    assert list(new['head.fc.weight'].shape) == [1000, 1440]


def test_released_backbone_parity(released):
    conv = load_tool('tools/model_converters/clusterformer2mmcluster.py')
    sd, dropped = conv.convert(released['state_dict'])
    assert not dropped
    model = ClusterFormer(_released_arch(released['config']), compat=True).double().eval()
    model.load_state_dict({k[9:]: v for k, v in sd.items() if k.startswith('backbone.')}, strict=True)
    outs = model(released['input'])
    diffs = [(o - r).abs().max().item() for o, r in zip(outs, released['outputs'])]
    assert max(diffs) < 1e-12, diffs


def test_any_size_batch_one_and_out_indices():
    model = ClusterFormer(MINI, out_indices=(0, 1, 2, 3)).eval()
    for size in [(32, 32), (37, 21), (5, 9), (1, 1)]:
        outs = model(torch.randn(1, 3, *size))
        h, w = -(-size[0] // 4), -(-size[1] // 4)
        for i, o in enumerate(outs):
            assert o.shape == (1, MINI['embed_dims'][i], h, w) and torch.isfinite(o).all()
            h, w = (h + 1) // 2, (w + 1) // 2
    assert len(ClusterFormer(MINI, out_indices=(-1, 1))(torch.randn(1, 3, 16, 16))) == 2
    # the released layer needs sizes divisible by its raw windows: a clear error, not a wrong result
    with pytest.raises(ValueError, match='divisible'):
        ClusterFormer(dict(MINI, windows=2), compat=True)(torch.randn(1, 3, 36, 36))


def test_records_on_the_token_grid():
    model = ClusterFormer(MINI).eval()
    with recording_clusters(model) as records:
        model(torch.randn(2, 3, 30, 22))
    rca = [r for r in records if r.name.endswith('clustering')]
    assert len(rca) == 4 * MINI['num_iters'] and [r.step for r in rca[:2]] == [0, 1]
    first = rca[0]
    assert first.name == 'network.0.0.token_mixer.clustering' and first.kind == 'soft'
    assert first.labels().shape == (2, 2, 8, 6)  # [B, E, H/4, W/4]


def test_errors_frozen_stages_and_norm_eval():
    with pytest.raises(ValueError, match="valid choices: \\['small', 'tiny'\\]"):
        ClusterFormer('base')
    with pytest.raises(ValueError, match='missing keys'):
        ClusterFormer(dict(layers=[1] * 4))
    with pytest.raises(ValueError, match='out_indices'):
        ClusterFormer(MINI, out_indices=(4, ))
    with pytest.raises(ValueError, match='expects'):
        ClusterFormer(MINI)(torch.randn(1, 1, 16, 16))
    model = ClusterFormer(MINI, frozen_stages=1, norm_eval=True)
    model.train()
    frozen = [model.patch_embed, model.network[0], model.network[1], model.network[2], model.norm0, model.norm2]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(not m.training for m in frozen)
    assert all(p.requires_grad for p in model.network[4].parameters()) and model.network[4].training
    assert not model.norm6.training  # norm_eval
    out = model(torch.randn(1, 3, 24, 24))
    sum(o.sum() for o in out).backward()
    assert model.patch_embed.proj.weight.grad is None and model.network[6][0].mlp.fc1.weight.grad is not None


@pytest.mark.parametrize('T', [1, 3])
def test_recursions_add_no_parameters(T):
    assert nparams(ClusterFormer(MINI, num_iters=T)) == nparams(ClusterFormer(MINI, num_iters=2))


def test_classifier_with_the_released_neck_reproduces_released_logits(released):
    """mmpretrain ImageClassifier + ConcatGlobalAveragePooling + LinearClsHead, weights via the converter."""
    pytest.importorskip('mmpretrain')
    import mmcluster  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    conv = load_tool('tools/model_converters/clusterformer2mmcluster.py')
    sd, _ = conv.convert(released['state_dict'])
    num_classes, width = sd['head.fc.weight'].shape
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='ClusterFormer', arch=_released_arch(released['config']), compat=True),
            neck=dict(type='ConcatGlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=width)))
    model = model.double().eval()
    model.load_state_dict(sd, strict=True)
    logits = model(released['input'], mode='tensor')
    assert (logits - released['logits']).abs().max().item() < 1e-12
