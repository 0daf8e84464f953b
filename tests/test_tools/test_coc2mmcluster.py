"""coc2mmcluster on files saved the way the official releases were (timm CheckpointSaver, mmcv 1.x), and parity
of the converted model with the official code's stored outputs (tests/data/fixtures/coc_official.pt, written by
tools/parity/make_coc_fixture.py from github.com/ma-xu/Context-Cluster)."""
import argparse
import json
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from conftest import load_tool
from mmcluster.models.backbones.context_cluster import ContextCluster

REPO = Path(__file__).resolve().parents[2]
TOOL = 'tools/model_converters/coc2mmcluster.py'
FIXTURE = REPO / 'tests/data/fixtures/coc_official.pt'


@pytest.fixture(scope='module')
def tool():
    return load_tool(TOOL)


@pytest.fixture(scope='module')
def official():
    return torch.load(FIXTURE, weights_only=True)


def _arch(official):
    """Our arch for the fixture's official model: official ``*_w`` act on the height axis (our first entry)."""
    a = official['official']
    return dict(layers=a['layers'], embed_dims=a['embed_dims'], mlp_ratios=a['mlp_ratios'], heads=a['heads'],
                head_dim=a['head_dim'], proposal=[list(p) for p in zip(a['proposal_w'], a['proposal_h'])],
                fold=[list(f) for f in zip(a['fold_w'], a['fold_h'])])


def _outputs(path, official, out_indices=(0, 1, 2, 3), prefix=None):
    """Build the backbone from a converted file as a config would, run it in float64 on the fixture input."""
    init_cfg = dict(type='Pretrained', checkpoint=str(path))
    if prefix:
        init_cfg['prefix'] = prefix
    model = ContextCluster(_arch(official), out_indices=out_indices, init_cfg=init_cfg)
    model.init_weights()
    model.double().eval()
    with torch.no_grad():
        return model, model(official['input'].double())


def _run(tool, capsys, official, src, dst, *extra):
    """The converter's command line in-process: (exit status, printed log)."""
    rc = tool.main([str(src), str(dst), '--arch', json.dumps(_arch(official)), *extra])
    return rc, capsys.readouterr().out


def _assert_outputs(ours, expected):
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


class Payload:

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _timm_file(official, path):
    """What timm's CheckpointSaver writes for an official classifier (train.py with --model-ema)."""
    weights = OrderedDict()
    for k, v in official['state_dict'].items():
        if k.startswith(('norm0.', 'norm2.', 'norm4.')):  # fork_feat only
            continue
        weights['norm.' + k[len('norm6.'):] if k.startswith('norm6.') else k] = v
    assert 'norm.weight' in official['tiny_keys']  # the official classifier names its last norm ``norm``
    weights['head.weight'] = torch.randn(10, weights['norm.weight'].numel(), dtype=torch.float16)
    weights['head.bias'] = torch.zeros(10, dtype=torch.float16)
    params = [torch.nn.Parameter(v.float()) for v in weights.values()]
    optim = torch.optim.AdamW(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    optim.step()
    torch.save({
        'epoch': 309, 'arch': 'coc_tiny', 'version': 2, 'metric': 73.2,
        'state_dict': OrderedDict((k, torch.zeros_like(v)) for k, v in weights.items()),  # --ema must matter
        'state_dict_ema': weights,
        'optimizer': optim.state_dict(),
        'amp_scaler': {'scale': 65536.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 2000,
                       '_growth_tracker': 3},
        'args': argparse.Namespace(model='coc_tiny', lr=1e-3, weight_decay=0.05, epochs=300, cooldown_epochs=10,
                                   mixup=0.8, cutmix=1.0, smoothing=0.1, drop_path=0.1, model_ema=True,
                                   aa='rand-m9-mstd0.5-inc1', crop_pct=0.9, amp=True, input_size=None),
    }, path)
    return weights


def test_timm_file_documented_command(tmp_path, official):
    """The documented command on a timm model_best.pth.tar, --ema; the result loads strictly and matches the
    official model's last-stage output."""
    src = tmp_path / 'model_best.pth.tar'
    weights = _timm_file(official, src)
    dst = tmp_path / 'coc_mmcluster.pth'
    cmd = [sys.executable, TOOL, str(src), str(dst), '--arch', json.dumps(_arch(official)), '--ema',
           '--norm-by', 'sim', '--with-head']
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'missing keys (0)' in run.stdout and 'unexpected keys (0)' in run.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['norm_by'] == 'sim' and ckpt['meta']['ema'] is True
    assert torch.equal(ckpt['state_dict']['head.fc.weight'], weights['head.weight'])
    backbone = {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items() if k.startswith('backbone.')}
    ContextCluster(_arch(official)).load_state_dict(backbone, strict=True)
    _, (out, ) = _outputs(dst, official, out_indices=(3, ), prefix='backbone.')
    torch.testing.assert_close(out, official['outputs_sim'][3], rtol=1e-10, atol=1e-10)


def test_undecidable_norm_by_needs_the_flag(tmp_path, official, tool, capsys):
    src = tmp_path / 'model_best.pth.tar'
    _timm_file(official, src)
    dst = tmp_path / 'out.pth'
    rc, log = _run(tool, capsys, official, src, dst)
    assert rc == 2 and 'cannot tell' in log and '--norm-by' in log
    assert not dst.exists()


def _gen1_mmcv_file(official, path, time_stamp='Mon Mar 13 09:12:44 2023'):
    """An mmdet 2.x checkpoint of a first-generation release, key names written from the docs' table."""
    sd = OrderedDict()
    for k, v in official['state_dict'].items():
        k = (k.replace('token_mixer.f.', 'token_mixer.fc1.').replace('token_mixer.proj.', 'token_mixer.fc2.')
             .replace('token_mixer.v.', 'token_mixer.fc_v.'))
        if '.mlp.fc' in k and k.endswith('.weight'):
            v = v[:, :, None, None]  # 1x1 Conv2d
        sd['backbone.' + k] = v
        if k.endswith('token_mixer.sim_beta'):
            sd['backbone.' + k.replace('sim_beta', 'fea_pos')] = torch.zeros(1, 2, 4, 4)
    sd['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 8, 1, 1)
    sd['rpn_head.rpn_conv.weight'] = torch.zeros(4, 4, 3, 3)
    meta = dict(mmcv_version='1.4.0', time=time_stamp, epoch=12, iter=87960, CLASSES=('person', 'bicycle'),
                config='model = dict(backbone=dict(type="context_cluster_small_feat2"))',
                hook_msgs=dict(last_ckpt='epoch_12.pth'))
    optimizer = dict(state={}, param_groups=[dict(lr=2e-4, weight_decay=1e-4, params=[0, 1])])
    torch.save(dict(meta=meta, state_dict=sd, optimizer=optimizer), path)


def test_generation1_mmdet_file_matches_the_official_mask_code(tmp_path, official, tool, capsys):
    src = tmp_path / 'mask_rcnn_coc_small_2.pth'
    _gen1_mmcv_file(official, src)
    dst = tmp_path / 'out.pth'
    rc, log = _run(tool, capsys, official, src, dst)
    assert rc == 0, log
    assert 'generation-1' in log and "norm_by='mask'" in log and 'neck.lateral_convs.0.conv.weight' in log
    assert torch.load(dst, weights_only=True)['meta']['norm_by'] == 'mask'
    model, outs = _outputs(dst, official)  # norm_by=None: taken from the converted file
    assert model.norm_by == 'mask'
    _assert_outputs(outs, official['outputs_mask'])


@pytest.mark.parametrize('norm_by', ['sim', 'mask'])
def test_official_parity_through_the_converter(tmp_path, official, tool, norm_by):
    """The official state dict (current key layout, fork_feat) -> converter -> ContextCluster, float64."""
    src = tmp_path / 'official.pth'
    torch.save(official['state_dict'], src)  # a raw state dict
    dst = tmp_path / 'out.pth'
    assert tool.main([str(src), str(dst), '--arch', json.dumps(_arch(official)), '--norm-by', norm_by]) == 0
    _, outs = _outputs(dst, official)
    _assert_outputs(outs, official[f'outputs_{norm_by}'])
    other = official['outputs_mask' if norm_by == 'sim' else 'outputs_sim']
    assert not torch.allclose(outs[-1], other[-1])  # the choice matters at this tolerance


def test_norm_by_from_mmcv_meta_time(tool):
    info = dict(layout='current')
    assert tool.decide_norm_by(info, dict(time='Sat Apr  1 10:00:00 2023'), None)[0] == 'mask'
    assert tool.decide_norm_by(info, dict(time='Tue Jun 20 10:00:00 2023'), None)[0] == 'sim'
    assert tool.decide_norm_by(info, dict(mmcv_version='1.7.0'), None)[0] is None
    assert tool.decide_norm_by(info, None, 'mask') == ('mask', '--norm-by')
    assert tool.decide_norm_by(dict(layout='generation-1'), None, None)[0] == 'mask'


def test_malicious_file_is_refused(tmp_path, tool, capsys):
    marker = tmp_path / 'pwned'
    src = tmp_path / 'evil.pth.tar'
    torch.save({'state_dict': {}, 'args': argparse.Namespace(lr=Payload(marker))}, src)
    rc = tool.main([str(src), str(tmp_path / 'o.pth'), '--arch', 'tiny', '--norm-by', 'sim'])
    log = capsys.readouterr().out
    assert rc == 2 and 'posix.system' in log
    assert not marker.exists() and not (tmp_path / 'o.pth').exists()


def test_mismatch_is_reported(tmp_path, official, tool, capsys):
    sd = OrderedDict(official['state_dict'])
    sd.pop('network.0.0.token_mixer.sim_alpha')
    sd['network.1.proj.weight'] = torch.zeros(1)
    src = tmp_path / 'raw.pth'
    torch.save(sd, src)
    rc, log = _run(tool, capsys, official, src, tmp_path / 'o.pth', '--norm-by', 'sim')
    assert rc == 1
    assert 'missing keys (1)' in log and 'network.0.0.token_mixer.sim_alpha' in log
    assert 'network.1.proj.weight: checkpoint (1,) vs model (12, 8, 3, 3)' in log


def test_ema_missing_is_an_error(tmp_path, official, tool, capsys):
    src = tmp_path / 'raw.pth'
    torch.save({'state_dict': official['state_dict'], 'epoch': 3}, src)
    rc, log = _run(tool, capsys, official, src, tmp_path / 'o.pth', '--ema')
    assert rc == 2 and 'state_dict_ema' in log
