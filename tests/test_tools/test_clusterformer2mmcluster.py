"""clusterformer2mmcluster on checkpoints laid out as the released code saves them (keys and shapes from the released
model definition, tests/data/fixtures/clusterformer_tiny_keys.json.gz, and the released small model's weights and
outputs, tests/data/fixtures/clusterformer_backbone.pt; both written by tools/parity/make_clusterformer_fixture.py)."""
import gzip
import json
from pathlib import Path

import pytest
import torch

from conftest import load_tool
from mmcluster.models.backbones.clusterformer import ClusterFormer

FIXTURES = Path(__file__).resolve().parents[1] / 'data' / 'fixtures'


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/model_converters/clusterformer2mmcluster.py')


def test_released_tiny_layout_converts_exactly_and_reports_differences(tool, tmp_path, capsys):
    ref = json.loads(gzip.decompress((FIXTURES / 'clusterformer_tiny_keys.json.gz').read_bytes()))
    sd = {k: torch.zeros(v) for k, v in ref['keys'].items()}
    src = tmp_path / 'cluster_tiny.pth'
    torch.save(dict(state_dict=sd, meta=dict(epoch=300)), src)
    assert tool.main([str(src), str(tmp_path / 'out.pth'), '--arch', 'tiny']) == 0
    out = capsys.readouterr().out
    assert 'missing keys (0)' in out and 'unexpected keys (0)' in out and 'shape mismatches (0)' in out
    saved = torch.load(tmp_path / 'out.pth', weights_only=True)['state_dict']
    assert saved['head.fc.weight'].shape == (1000, 1440)
    # a key missing and one unexpected: reported by name, exit status 1
    del sd['backbone.network.4.3.token_mixer.conv_c.weight']
    sd['backbone.network.4.9.token_mixer.conv_c.weight'] = torch.zeros(32, 32, 1, 1)
    torch.save(sd, src)
    assert tool.main([str(src), str(tmp_path / 'out2.pth'), '--arch', 'tiny']) == 1
    out = capsys.readouterr().out
    assert 'missing keys (1)' in out and 'network.4.3.token_mixer.clustering.q_proj.weight' in out
    assert 'unexpected keys (1)' in out and 'network.4.9.token_mixer.clustering.q_proj.weight' in out


def test_converted_file_loads_through_init_cfg_and_reproduces_the_release(tool, tmp_path):
    fx = torch.load(FIXTURES / 'clusterformer_backbone.pt', weights_only=True)
    cfg = fx['config']
    arch = dict(layers=cfg['layers'], embed_dims=cfg['embed_dims'], mlp_ratios=cfg['mlp_ratios'],
                heads=cfg['heads'], head_dim=cfg['head_dim'],
                num_centers=[[w, h] for w, h in zip(cfg['center_w'], cfg['center_h'])],
                windows=[[w, h] for w, h in zip(cfg['window_w'], cfg['window_h'])], window_size=4,
                num_iters=cfg['num_clustering'])
    src = tmp_path / 'released.pth'
    torch.save(dict(state_dict=fx['state_dict']), src)
    dst = tmp_path / 'converted.pth'
    assert tool.main([str(src), str(dst), '--arch', json.dumps(arch)]) == 0
    model = ClusterFormer(arch, compat=True,
                          init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    model.double().eval()  # before loading, so that the float64 weights are not rounded
    model.init_weights()
    with torch.no_grad():
        outs = model(fx['input'])
    assert max((o - r).abs().max().item() for o, r in zip(outs, fx['outputs'])) < 1e-12


def test_refuses_pickled_code(tool, tmp_path, capsys):
    import argparse
    src = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={}, args=argparse.ArgumentParser), src)
    assert tool.main([str(src), str(tmp_path / 'o.pth'), '--arch', 'tiny']) == 2
    assert 'ERROR' in capsys.readouterr().out
