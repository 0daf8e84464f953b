"""kMaX-DeepLab's ConvNeXt (``KMaXConvNeXt``): parity with the authors' ConvNeXt (``tests/data/fixtures/
kmax_convnext.pt`` from ``tools/parity/make_kmax_fixture.py``: official module, deterministic weights, loaded
here through the converter), the official feature sizes at the training size 1281 (321 / 161 / 81 / 41), and
mmpretrain's ConvNeXt behaviour behind the two switches."""
import pytest
import torch
from conftest import REPO, load_tool

from mmcluster.models.backbones import KMaXConvNeXt

FIXTURES = REPO / 'tests' / 'data' / 'fixtures'
TINY = dict(depths=[1, 1, 1, 1], channels=[4, 8, 16, 32])


@pytest.fixture(scope='module')
def official():
    fx = torch.load(FIXTURES / 'kmax_convnext.pt', weights_only=True)
    parity = load_tool('tools/parity/make_kmax_fixture.py')
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    weights = parity.deterministic_state_dict(parity.unpack_shapes(fx['shapes']))
    assert abs(parity.checksum(weights) - fx['checksum']) < 1e-6
    state, dropped = conv.convert({'backbone.' + k: v for k, v in weights.items()})  # the user's path
    assert not dropped
    image = parity.deterministic_image(fx['image_shape'])
    return fx, {k[len('backbone.'):]: v for k, v in state.items()}, image


def test_parity_with_official_convnext(official):
    fx, state, image = official
    cfg = fx['config']
    model = KMaXConvNeXt(arch=dict(depths=cfg['depths'], channels=cfg['dims'])).double().eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        outs = model(image)
    assert len(outs) == 4
    for ours, ref in zip(outs, fx['outs']):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_mmpretrain_behaviour_differs(official):
    """Without the official padding (and with output norms) the converted weights give other features."""
    fx, state, image = official
    cfg = fx['config']
    model = KMaXConvNeXt(arch=dict(depths=cfg['depths'], channels=cfg['dims']), tf_padding=False,
                         out_norms=True).double().eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert sorted(missing) == [f'norm{i}.{p}' for i in range(4) for p in ('bias', 'weight')] and not unexpected
    with torch.no_grad():
        outs = model(image)
    assert [o.shape[-2:] for o in outs] == [(16, 18), (8, 9), (4, 4), (2, 2)]
    assert [o.shape[-2:] for o in fx['outs']] == [(17, 19), (9, 10), (5, 5), (3, 3)]


def test_official_feature_sizes_at_training_size():
    model = KMaXConvNeXt(arch=TINY).eval()
    with torch.no_grad():
        outs = model(torch.zeros(1, 3, 1281, 1281))
    assert [o.shape[-1] for o in outs] == [321, 161, 81, 41]
    assert [o.shape[1] for o in outs] == TINY['channels']


def test_frozen_stages_and_out_norms():
    model = KMaXConvNeXt(arch=TINY, frozen_stages=0)
    model.train()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(('downsample_layers.0.', 'stages.0.')) for n in frozen)
    assert not model.stages[0].training and model.stages[1].training
    assert all(p.requires_grad for p in KMaXConvNeXt(arch=TINY).parameters())
    assert not any(k.startswith('norm') for k in KMaXConvNeXt(arch=TINY).state_dict())
    assert 'norm3.weight' in KMaXConvNeXt(arch=TINY, out_norms=True).state_dict()
