"""The safe checkpoint loader reads what timm, mmcv 1.x and detectron2 write, and refuses pickled code."""
import argparse
import collections
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from mmcluster.utils.checkpoint import (NotACheckpointError, UnsafeCheckpointError, check_state_dict,
                                        load_checkpoint_safely, pick_state_dict, strip_prefix)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 2))


def _optimizer_state(model):
    model(torch.randn(2, 3, 5, 5))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    opt.step()
    return opt.state_dict()


class Payload:
    """Unpickling this runs a shell command that creates ``marker`` (what a hostile checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class PlainRecord:
    """A harmless user class (allowed only when passed explicitly)."""

    def __init__(self, value=0):
        self.value = value


def test_timm_checkpoint_saver_file(tmp_path):
    """Keys and types of timm's CheckpointSaver (train.py): Namespace args, optimizer, EMA, amp scaler."""
    model = _net()
    optim_state = _optimizer_state(model)
    sd = model.state_dict()
    ckpt = {
        'epoch': 299, 'arch': 'coc_tiny', 'state_dict': sd, 'optimizer': optim_state, 'version': 2,
        'args': argparse.Namespace(model='coc_tiny', lr=1e-3, mixup=0.8, drop_path=0.1, aa='rand-m9-mstd0.5-inc1',
                                   input_size=None, mean=(0.485, 0.456, 0.406), amp=True, device='cuda:0'),
        'amp_scaler': {'scale': 65536.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 2000,
                       '_growth_tracker': 17},
        'state_dict_ema': collections.OrderedDict((k, v + 1) for k, v in sd.items()),
        'metric': np.float64(73.2),
    }
    path = tmp_path / 'model_best.pth.tar'
    torch.save(ckpt, path)
    out = load_checkpoint_safely(path)
    assert isinstance(out['args'], argparse.Namespace) and out['args'].model == 'coc_tiny'
    assert out['args'].mean == (0.485, 0.456, 0.406)
    assert float(out['metric']) == 73.2 and out['epoch'] == 299
    assert out['optimizer']['param_groups'][0]['lr'] == 1e-3
    assert set(out['optimizer']['state']) == set(optim_state['state'])
    torch.testing.assert_close(out['optimizer']['state'][0]['exp_avg'], optim_state['state'][0]['exp_avg'])
    weights = pick_state_dict(out)
    ema = pick_state_dict(out, ema=True)
    assert list(weights) == list(sd)
    for k in sd:
        assert torch.equal(weights[k], sd[k]) and torch.equal(ema[k], sd[k] + 1)


def test_mmcv1_file_with_meta_and_numpy(tmp_path):
    """mmcv 1.x save_checkpoint: meta (mmcv_version, CLASSES, PALETTE, hook_msgs with numpy), optimizer."""
    model = _net()
    sd = collections.OrderedDict(('backbone.' + k, v) for k, v in model.state_dict().items())
    sd['neck.lateral.weight'] = torch.zeros(2, 2)
    meta = dict(mmcv_version='1.7.1', time='Mon Mar  6 10:00:00 2023', epoch=12, iter=87960,
                CLASSES=('person', 'bicycle'), PALETTE=[[220, 20, 60], [119, 11, 32]], config='model = dict()',
                seed=np.int64(0), hook_msgs=dict(best_score=np.float32(0.359), last_ckpt='epoch_12.pth'),
                shapes=np.arange(6, dtype=np.int16).reshape(2, 3))
    path = tmp_path / 'mask_rcnn_coc_small.pth'
    torch.save({'meta': meta, 'state_dict': sd, 'optimizer': _optimizer_state(model)}, path)
    out = load_checkpoint_safely(path)
    assert out['meta']['CLASSES'] == ('person', 'bicycle')
    assert out['meta']['hook_msgs']['best_score'].dtype == np.float32
    assert isinstance(out['meta']['seed'], np.int64)
    np.testing.assert_array_equal(out['meta']['shapes'], np.arange(6).reshape(2, 3))
    backbone, dropped = strip_prefix(pick_state_dict(out), 'backbone.')
    assert dropped == ['neck.lateral.weight']
    check_state_dict(backbone, _net(), load=True)


def test_detectron2_pickle_and_legacy_torch_format(tmp_path):
    """detectron2 ``.pkl`` (plain pickle, numpy arrays under ``model``) and torch's pre-1.6 format."""
    arrays = {'backbone.stem.conv1.weight': np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32),
              'sem_seg_head.predictor.query_embed.weight': np.ones((5, 8), dtype=np.float32)}
    pkl = tmp_path / 'model_final.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump({'model': arrays, '__author__': 'Detectron2', 'matching_heuristics': True,
                     'shape': np.float64(2.5), 'steps': collections.Counter(a=2)}, f, protocol=2)
    out = load_checkpoint_safely(pkl)
    assert out['__author__'] == 'Detectron2' and out['steps'] == collections.Counter(a=2)
    assert out['shape'] == 2.5
    sd = pick_state_dict(out)
    assert isinstance(sd['backbone.stem.conv1.weight'], torch.Tensor)
    np.testing.assert_array_equal(sd['backbone.stem.conv1.weight'].numpy(), arrays['backbone.stem.conv1.weight'])

    legacy = tmp_path / 'legacy.pth'
    torch.save({'model': {'w': torch.arange(3.)}, 'iteration': 5}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint_safely(legacy)['model']['w'], torch.arange(3.))


@pytest.mark.parametrize('protocol', [3, 4, 5])
def test_plain_pickle_of_newer_protocols(tmp_path, protocol):
    """``pickle.dump``'s default since Python 3.8 is protocol 4 (detectron2's convert-torchvision-to-d2.py writes
    that); torch's restricted unpickler knows protocol 2 only, so these go through the allowlist unpickler."""
    arrays = {'stem.conv1.weight': np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32)}
    obj = {'model': arrays, '__author__': 'torchvision', 'matching_heuristics': True, 'shape': np.float64(2.5),
           'steps': collections.Counter(a=2), 'args': argparse.Namespace(lr=0.1), 'ids': {1, 2}, 'raw': b'\x00\x01',
           'order': collections.OrderedDict(b=1, a=2)}
    path = tmp_path / 'R-50.pkl'
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=protocol)
    out = load_checkpoint_safely(path)
    assert out['args'].lr == 0.1 and out['ids'] == {1, 2} and out['raw'] == b'\x00\x01'
    assert list(out['order']) == ['b', 'a'] and out['steps'] == collections.Counter(a=2) and out['shape'] == 2.5
    np.testing.assert_array_equal(pick_state_dict(out)['stem.conv1.weight'].numpy(), arrays['stem.conv1.weight'])


def _not_checkpoints(tmp_path):
    """Files a user may hand a converter by mistake: (name, path, what the message must say)."""
    import zipfile
    text = tmp_path / 'config.py'
    text.write_text("model = dict(type='ImageClassifier')\n")
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    archive = tmp_path / 'images.zip'
    with zipfile.ZipFile(archive, 'w') as z:
        z.writestr('a.txt', 'not a tensor')
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.ones(64)}}, good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:200])
    legacy = tmp_path / 'legacy.pth'
    torch.save({'state_dict': {'w': torch.ones(64)}}, legacy, _use_new_zipfile_serialization=False)
    legacy_cut = tmp_path / 'legacy_cut.pth'
    legacy_cut.write_bytes(legacy.read_bytes()[:-40])
    text_pickle = tmp_path / 'protocol0.pkl'
    text_pickle.write_bytes(pickle.dumps({'a': 1}, protocol=0))
    return [('text', text, 'neither a zip archive nor a binary pickle'), ('empty', empty, 'empty'),
            ('zip', archive, 'zip archive that torch.save did not write'),
            ('truncated_zip', truncated, 'damaged zip archive'), ('truncated_legacy', legacy_cut, 'truncated'),
            ('protocol0', text_pickle, 'neither a zip archive nor a binary pickle'),
            ('directory', tmp_path, 'directory')]


def test_files_that_are_not_checkpoints(tmp_path):
    """A clear NotACheckpointError naming the file, never a KeyError / EOFError from inside an unpickler."""
    for name, path, says in _not_checkpoints(tmp_path):
        with pytest.raises(NotACheckpointError) as info:
            load_checkpoint_safely(path)
        message = str(info.value)
        assert str(path) in message and says in message and 'torch.save' in message, (name, message)
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        load_checkpoint_safely(tmp_path / 'missing.pth')
    # a pickle that is not a dict loads (it is data), and the state-dict step names the problem
    listed = tmp_path / 'list.pkl'
    listed.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(TypeError, match='must be a dict, got list'):
        pick_state_dict(load_checkpoint_safely(listed))


@pytest.mark.parametrize('where', ['top', 'inside_namespace', 'plain_pickle', 'plain_pickle_protocol4',
                                   'plain_pickle_protocol5', 'legacy'])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, where):
    marker = tmp_path / 'pwned'
    # control: the payload really runs under an unrestricted unpickler (so its absence below means something)
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker.unlink()

    path = tmp_path / 'evil.pth'
    if where == 'top':
        torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Payload(marker)}, path)
    elif where == 'inside_namespace':
        torch.save({'state_dict': {}, 'args': argparse.Namespace(lr=Payload(marker))}, path)
    elif where == 'legacy':
        torch.save({'x': Payload(marker)}, path, _use_new_zipfile_serialization=False)
    elif where.startswith('plain_pickle_protocol'):
        with open(path, 'wb') as f:
            pickle.dump({'model': {}, 'x': Payload(marker)}, f, protocol=int(where[-1]))
    else:
        with open(path, 'wb') as f:
            pickle.dump({'model': {}, 'x': Payload(marker)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match=r"'posix\.system'.*extra_types"):
        load_checkpoint_safely(path)
    assert not marker.exists()


def test_unknown_class_named_and_extra_types(tmp_path):
    path = tmp_path / 'custom.pth'
    torch.save({'state_dict': {}, 'record': PlainRecord(3)}, path)
    with pytest.raises(UnsafeCheckpointError, match='PlainRecord'):
        load_checkpoint_safely(path)
    assert load_checkpoint_safely(path, extra_types=[PlainRecord])['record'].value == 3
    # allowed for that call only
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_safely(path)


def test_process_wide_allowlist_survives(tmp_path):
    """Types mmcluster.compat allows process-wide (for mmengine's Runner) stay allowed after a safe load."""
    import mmcluster  # noqa: F401  (applies compat)
    before = set(torch.serialization.get_safe_globals())
    assert np.ndarray in before
    torch.save({'a': np.zeros(2), 'args': argparse.Namespace(x=1)}, tmp_path / 'c.pth')
    load_checkpoint_safely(tmp_path / 'c.pth')
    assert set(torch.serialization.get_safe_globals()) == before
    assert argparse.Namespace not in before  # the timm extras stay local to the call


def test_pick_state_dict_choices_and_errors():
    sd = {'w': torch.zeros(1)}
    assert list(pick_state_dict({'model': sd, 'iteration': 3})) == ['w']  # detectron2
    assert list(pick_state_dict(sd)) == ['w']  # raw
    assert list(pick_state_dict({'ema_state_dict': sd, 'state_dict': {}}, ema=True)) == ['w']  # mmengine EMAHook
    with pytest.raises(KeyError, match='state_dict_ema.*epoch'):
        pick_state_dict({'state_dict': sd, 'epoch': 1}, ema=True)
    with pytest.raises(TypeError, match='not tensors'):
        pick_state_dict({'epoch': 1, 'arch': 'x'})
    kept, dropped = strip_prefix({'module.a': 1, 'b': 2}, 'module.', drop_others=False)
    assert kept == {'a': 1, 'b': 2} and dropped == []


def test_check_state_dict_reports_every_difference():
    model = nn.Linear(3, 2)
    sd = {'weight': torch.zeros(2, 4), 'extra': torch.zeros(1)}
    report = check_state_dict(sd, model)
    assert report.missing == ['bias'] and report.unexpected == ['extra']
    assert report.mismatched == [('weight', (2, 4), (2, 3))]
    assert report.exit_code == 1 and not report.exact
    assert 'bias' in str(report) and 'checkpoint (2, 4) vs model (2, 3)' in str(report)
    with pytest.raises(ValueError, match='missing keys'):
        check_state_dict(sd, model, load=True)
    good = {'weight': torch.ones(2, 3), 'bias': torch.ones(2)}
    assert check_state_dict(good, model, load=True).exit_code == 0
    assert torch.equal(model.weight, torch.ones(2, 3))
