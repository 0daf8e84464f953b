"""coc2mmcluster: official generation-1 / generation-2 checkpoints round-trip into ContextCluster."""
import importlib.util
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from mmcluster.models.backbones.context_cluster import ContextCluster

TOOL = Path(__file__).resolve().parents[2] / 'tools/model_converters/coc2mmcluster.py'
MINI = dict(layers=[1, 1, 2, 1], embed_dims=[8, 16, 24, 32], mlp_ratios=[2, 2, 2, 2], heads=[2, 2, 2, 2],
            head_dim=4, proposal=2, fold=[8, 4, 2, 1])


def _tool():
    spec = importlib.util.spec_from_file_location('coc2mmcluster', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomised(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model


def _to_generation1(state_dict, prefix='backbone.'):
    """Official generation-1 naming (what the March 2023 dense checkpoints contain)."""
    out = OrderedDict()
    for k, v in state_dict.items():
        k = k.replace('token_mixer.f.', 'token_mixer.fc1.').replace('token_mixer.proj.', 'token_mixer.fc2.')
        k = k.replace('token_mixer.v.', 'token_mixer.fc_v.')
        if '.mlp.fc' in k and k.endswith('weight'):
            v = v[:, :, None, None]  # Conv2d 1x1
        out[prefix + k] = v
        if k.endswith('token_mixer.sim_beta'):
            out[prefix + k.replace('sim_beta', 'fea_pos')] = torch.zeros(1, 2, 7, 7)
    out['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 8, 1, 1)  # detector parts are dropped
    return out


def test_generation1_dense_round_trip(tmp_path, capsys):
    model = _randomised(ContextCluster(MINI, out_indices=(0, 1, 2, 3), norm_by='mask')).eval()
    src = tmp_path / 'mask_rcnn_coc.pth'
    torch.save({'state_dict': _to_generation1(model.state_dict()), 'meta': {}}, src)
    dst = tmp_path / 'out.pth'
    rc = _tool().main([str(src), str(dst), '--arch', json.dumps(MINI)])
    log = capsys.readouterr().out
    assert rc == 0, log
    assert 'generation 1' in log and "norm_by='mask'" in log
    assert 'missing keys (0)' in log and 'unexpected keys (0)' in log
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['norm_by'] == 'mask' and ckpt['meta']['out_indices'] == [0, 1, 2, 3]
    fresh = ContextCluster(MINI, out_indices=(0, 1, 2, 3), norm_by='mask').eval()
    fresh.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), fresh(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_generation2_classifier_with_head(tmp_path):
    tool = _tool()
    model = _randomised(ContextCluster(MINI))
    official = OrderedDict((k.replace('norm6.', 'norm.'), v) for k, v in model.state_dict().items())
    official['head.weight'] = torch.randn(10, 32)
    official['head.bias'] = torch.randn(10)
    new, info = tool.convert(tool.pick_state_dict({'state_dict_ema': official, 'state_dict': {}}, use_ema=True),
                             with_head=True)
    assert info['generation'] == 2 and info['norm_by'] == 'sim' and info['out_indices'] == (3, )
    assert torch.equal(new['head.fc.weight'], official['head.weight'])
    backbone = {k: v for k, v in new.items() if not k.startswith('head.')}
    missing, unexpected = tool.check_load(backbone, ContextCluster(MINI))
    assert missing == [] and unexpected == []


def test_mismatch_is_reported(tmp_path, capsys):
    model = ContextCluster(MINI, out_indices=(0, 1, 2, 3))
    sd = model.state_dict()
    sd.pop('network.0.0.token_mixer.sim_alpha')
    sd['network.1.proj.weight'] = torch.zeros(1)
    src = tmp_path / 'raw.pth'
    torch.save(sd, src)  # raw state dict
    rc = _tool().main([str(src), str(tmp_path / 'o.pth'), '--arch', json.dumps(MINI)])
    log = capsys.readouterr().out
    assert rc == 1
    assert 'network.0.0.token_mixer.sim_alpha' in log and 'network.1.proj.weight (shape' in log


def test_ema_missing_raises(tmp_path):
    with pytest.raises(KeyError, match='state_dict_ema'):
        _tool().pick_state_dict({'state_dict': {}}, use_ema=True)
