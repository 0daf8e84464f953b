"""Checkpoints (issue 13 item 4): resume is exact, a mismatched checkpoint is never loaded silently, and the
converters refuse files that are not checkpoints.

* Resume: a clustering model of each toolkit (CoC classifier / mmpretrain, HCFormer semantic / mmseg,
  kMaX-DeepLab panoptic / mmdet; the last two marked slow) trains ``2 * STEPS`` iterations through mmengine's Runner
  (CPU, fixed seed), saving a checkpoint after ``STEPS``; a second Runner resumes from it (``resume=True``,
  ``load_from``) with the hooks ``tools/train.py`` adds, and must log the same losses for the iterations after the
  checkpoint as the uninterrupted run, and end with the same weights. (:class:`~mmcluster.engine.hooks.RNGStateHook`
  restores torch's generator: without it kMaX-DeepLab's sampled losses differ after resuming.) Runners run in
  this process: one import of the toolkits, where ``tools/train.py`` subprocesses would spend more on start-up
  than on these few tiny iterations.
* Mismatch: resuming from a checkpoint that does not match the model raises with the missing / unexpected /
  shape-mismatched keys (:class:`~mmcluster.engine.hooks.CheckpointCheckHook`; mmengine alone loads it
  non-strictly and only prints a notice); ``load_from`` a checkpoint that matches nothing raises; a partial match
  loads what matches and logs every difference; ``init_cfg=dict(type='Pretrained')`` raises (ContextCluster) or
  logs (mmengine's PretrainedInit) the differing keys.
* Converters: every ``tools/model_converters/*.py`` exits with status 2 and a message naming the file for a
  text file, an empty file, a zip archive that is no torch file, a truncated checkpoint, a pickle of a list and
  a pickle that would run code (which does not run).
"""
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from conftest import REPO, load_tool

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')
pytest.importorskip('mmpretrain.models')

import mmcluster  # noqa: E402,F401  (registration, compat)
from mmcluster.engine import add_checkpoint_hooks  # noqa: E402
from mmcluster.utils.toy_run import TOY_DATA_ENV, read_scalars  # noqa: E402

STEPS = 1

#: (config, cfg options that keep it tiny): one clustering model per toolkit
RESUME_CASES = {
    'coc_mmpretrain': ('configs/context_cluster/coc-tiny_1xb32-toy_imagenet.py', {'train_dataloader.batch_size': 4}),
    'hcformer_mmseg': ('configs/hcformer/hcformer_r18_1xb8-toy_ade20k-256x256.py', {'train_dataloader.batch_size': 1}),
    'kmax_mmdet': ('configs/kmax_deeplab/kmax-deeplab_r18_1xb2-toy_coco-panoptic.py',
                   {'train_dataloader.batch_size': 1}),
}
#: a minute or more each on two busy cores (two Runner builds of a Mask2Former-style model): `make test-slow`
SLOW_CASES = ('hcformer_mmseg', 'kmax_mmdet')


def _config(name: str, work_dir: Path, iters: int, extra: Optional[Dict] = None):
    """The case's config for an in-process Runner: ``iters`` iterations, a checkpoint every ``STEPS``, every loss
    logged (window 1), no validation, no data-loader workers, a unique experiment name, and the hooks that
    ``tools/train.py`` adds (strict resume, torch's RNG state in checkpoints)."""
    from mmengine.config import Config
    path, options = RESUME_CASES[name]
    cfg = Config.fromfile(str(REPO / path))
    cfg.merge_from_dict({
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 10**6,
        'default_hooks.checkpoint.interval': STEPS, 'default_hooks.checkpoint.max_keep_ckpts': -1,
        'default_hooks.logger.interval': 1, 'log_processor.window_size': 1, 'randomness.seed': 0,
        'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False, **options, **(extra or {})})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{name}_{work_dir.name}_{os.getpid()}'
    cfg.visualizer.name = cfg.experiment_name  # one visualizer (and scalars.json) per run in this process
    add_checkpoint_hooks(cfg)
    return cfg


def _run(cfg):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _losses(work_dir: Path) -> Dict[int, Dict[str, float]]:
    """Every logged loss term by iteration."""
    curve, _ = read_scalars(work_dir)
    return {int(r['iter']): {k: v for k, v in r.items() if 'loss' in k} for r in curve}


@pytest.fixture
def toy_env(toy_data, monkeypatch):
    monkeypatch.setenv(TOY_DATA_ENV, str(toy_data))
    return toy_data


@pytest.mark.parametrize(
    'name', [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in sorted(RESUME_CASES)])
def test_resume_gives_the_same_next_losses(name, toy_env, tmp_path):
    full = tmp_path / 'full'
    _run(_config(name, full, 2 * STEPS))
    resumed = tmp_path / 'resumed'
    _run(_config(name, resumed, 2 * STEPS, {'resume': True, 'load_from': str(full / f'iter_{STEPS}.pth')}))

    want, got = _losses(full), _losses(resumed)
    assert sorted(want) == list(range(1, 2 * STEPS + 1)), want
    assert sorted(got) == list(range(STEPS + 1, 2 * STEPS + 1)), f'the resumed run did not start at {STEPS + 1}'
    # the model trains (later losses differ from the first), so equal losses after resuming test the restored
    # weights, optimizer moments and schedule, not just a fixed initialisation
    assert want[1]['loss'] != pytest.approx(want[2 * STEPS]['loss'], rel=1e-4)
    for it in range(STEPS + 1, 2 * STEPS + 1):
        assert set(got[it]) == set(want[it])
        for term, value in want[it].items():
            assert got[it][term] == pytest.approx(value, rel=1e-5, abs=1e-6), (name, it, term)
    end_full = torch.load(full / f'iter_{2 * STEPS}.pth', map_location='cpu')
    end_resumed = torch.load(resumed / f'iter_{2 * STEPS}.pth', map_location='cpu')
    for key, value in end_full['state_dict'].items():
        torch.testing.assert_close(end_resumed['state_dict'][key], value, rtol=1e-5, atol=1e-6, msg=key)


# --------------------------------------------------------------------------- mismatched checkpoints
@pytest.fixture(scope='module')
def coc_checkpoint(tmp_path_factory, toy_data):
    """A real CoC classifier checkpoint (``STEPS`` iterations), written by mmengine's Runner."""
    root = tmp_path_factory.mktemp('ckpt')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOY_DATA_ENV, str(toy_data))
        _run(_config('coc_mmpretrain', root / 'coc', STEPS))
    return root / 'coc' / f'iter_{STEPS}.pth'


def _tampered(src: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(src, map_location='cpu')
    edit(ckpt['state_dict'])
    torch.save(ckpt, dst)
    return dst


def _edit_three_ways(sd):
    sd.pop('head.fc.bias')  # missing
    sd['neck.extra.weight'] = torch.zeros(3)  # unexpected
    sd['head.fc.weight'] = torch.zeros(7, 3)  # shape mismatch


def test_resume_from_a_mismatched_checkpoint_names_the_keys(coc_checkpoint, toy_env, tmp_path):
    bad = _tampered(coc_checkpoint, tmp_path / 'bad.pth', _edit_three_ways)
    cfg = _config('coc_mmpretrain', tmp_path / 'run', 2 * STEPS, {'resume': True, 'load_from': str(bad)})
    with pytest.raises(RuntimeError) as info:
        _run(cfg)
    message = str(info.value)
    assert 'resume' in message and str(bad) in message
    assert 'missing keys (1)' in message and 'head.fc.bias' in message
    assert 'unexpected keys (1)' in message and 'neck.extra.weight' in message
    assert 'head.fc.weight: checkpoint (7, 3)' in message
    assert not list((tmp_path / 'run').glob('iter_*.pth')), 'training went on after the refused resume'


def test_load_from_that_matches_nothing_is_an_error(coc_checkpoint, toy_env, tmp_path):
    """A prefix mistake (weights of the backbone alone handed to the whole classifier) would load nothing."""
    def backbone_only(sd):
        for key in list(sd):
            value = sd.pop(key)
            if key.startswith('backbone.'):
                sd[key[len('backbone.'):]] = value
    bad = _tampered(coc_checkpoint, tmp_path / 'backbone_only.pth', backbone_only)
    cfg = _config('coc_mmpretrain', tmp_path / 'run', 1, {'load_from': str(bad)})
    with pytest.raises(RuntimeError, match=r'(?s)no parameter of the model.*backbone\.'):
        _run(cfg)


def _capture_mmengine_log():
    """A handler on mmengine's current logger (``print_log(logger='current')``); returns its records."""
    from mmengine.logging import MMLogger
    records: List[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    MMLogger.get_current_instance().addHandler(Keep(level=logging.WARNING))
    return records


def test_load_from_a_partial_match_reports_its_keys(coc_checkpoint, toy_env, tmp_path):
    """Fine-tuning from another task is what ``load_from`` is for (mmengine: non-strict): the matching weights
    are loaded and every difference is named in the run's log."""
    bad = _tampered(coc_checkpoint, tmp_path / 'bad.pth', _edit_three_ways)
    cfg = _config('coc_mmpretrain', tmp_path / 'run', 1, {'load_from': str(bad)})
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    records = _capture_mmengine_log()
    runner.load_or_resume()
    text = '\n'.join(records)
    assert 'missing keys (1)' in text and 'head.fc.bias' in text, text
    assert 'neck.extra.weight' in text and 'head.fc.weight: checkpoint (7, 3)' in text, text
    want = torch.load(coc_checkpoint, map_location='cpu')['state_dict']
    torch.testing.assert_close(runner.model.state_dict()['backbone.norm6.weight'], want['backbone.norm6.weight'])


def _backbone_state(model, tamper: bool):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if tamper:
        state.pop(next(k for k in state if k.endswith('.bias') and 'norm' not in k))
        state['stray.weight'] = torch.zeros(1)
    return state


def test_pretrained_init_cfg_reports_its_keys(tmp_path):
    """``init_cfg=dict(type='Pretrained')``: ContextCluster loads strictly (only its optional output norms may
    differ) and raises with the key report; the other backbones use mmengine's PretrainedInit, which loads
    non-strictly and logs every differing key."""
    from mmengine.logging import MMLogger

    from mmcluster.models.backbones.clustr import ClusTR
    from mmcluster.models.backbones.context_cluster import ContextCluster
    MMLogger.get_instance('test_pretrained_keys')
    coc = _backbone_state(ContextCluster(arch='tiny', out_indices=(3, )), tamper=True)
    torch.save({'state_dict': coc}, tmp_path / 'coc.pth')
    model = ContextCluster(arch='tiny', out_indices=(3, ),
                           init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'coc.pth')))
    with pytest.raises(ValueError, match=r'(?s)does not match ContextCluster.*missing keys \(1\).*stray\.weight'):
        model.init_weights()

    source = ClusTR(arch='tiny')
    clustr = _backbone_state(source, tamper=True)
    missing = next(k for k in source.state_dict() if k not in clustr)
    torch.save({'state_dict': clustr}, tmp_path / 'clustr.pth')
    records = _capture_mmengine_log()
    model = ClusTR(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'clustr.pth')))
    model.init_weights()
    text = '\n'.join(records)
    assert missing in text and 'stray.weight' in text, text
    key = next(k for k, v in clustr.items() if v.dim() > 1 and k in dict(model.named_parameters()))
    torch.testing.assert_close(model.state_dict()[key], clustr[key])


# --------------------------------------------------------------------------- converters
CONVERTERS = {
    'coc2mmcluster': ['--arch', 'tiny', '--norm-by', 'sim'],
    'clusterformer2mmcluster': ['--arch', 'tiny'],
    'hcformer2mmcluster': [],
    'kmax2mmcluster': [],
}


def _bad_inputs(tmp_path: Path) -> Dict[str, Path]:
    import pickle
    import zipfile
    files = {'text': tmp_path / 'notes.txt', 'empty': tmp_path / 'empty.pth', 'zip': tmp_path / 'images.zip',
             'truncated': tmp_path / 'truncated.pth', 'list': tmp_path / 'list.pkl',
             'code': tmp_path / 'evil.pkl', 'missing': tmp_path / 'missing.pth'}
    files['text'].write_text('these are not weights\n')
    files['empty'].write_bytes(b'')
    with zipfile.ZipFile(files['zip'], 'w') as z:
        z.writestr('img.png', b'\x89PNG')
    torch.save({'state_dict': {'w': torch.ones(100)}}, tmp_path / 'good.pth')
    files['truncated'].write_bytes((tmp_path / 'good.pth').read_bytes()[:300])
    files['list'].write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    marker = tmp_path / 'ran'
    files['code'].write_bytes(
        pickle.dumps({'model': {}, 'x': _Payload(marker)}, protocol=4))
    return files


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.mark.parametrize('converter', sorted(CONVERTERS))
def test_converters_refuse_files_that_are_not_checkpoints(converter, tmp_path, capsys):
    tool = load_tool(f'tools/model_converters/{converter}.py')
    says = {'text': 'is not a checkpoint', 'empty': 'the file is empty', 'zip': 'torch.save did not write',
            'truncated': 'damaged zip archive', 'list': 'must be a dict, got list', 'code': "'posix.system'",
            'missing': 'not found'}
    for kind, src in _bad_inputs(tmp_path).items():
        dst = tmp_path / f'out_{kind}.pth'
        rc = tool.main([str(src), str(dst), *CONVERTERS[converter]])
        out, err = capsys.readouterr()
        assert rc == 2, (converter, kind, out, err)
        assert str(src) in out + err and says[kind] in out + err and 'Traceback' not in err, (kind, out, err)
        assert not dst.exists()
    assert not (tmp_path / 'ran').exists(), 'pickled code ran'


def test_no_converter_unpickles_on_its_own():
    """Every converter reads its input through mmcluster.utils.checkpoint (no torch.load / pickle.load of the
    file it was handed)."""
    for path in sorted((REPO / 'tools' / 'model_converters').glob('*.py')):
        text = path.read_text()
        assert 'load_source(' in text, path.name
        for call in ('torch.load(', 'pickle.load(', 'pickle.loads(', 'weights_only=False'):
            assert call not in text, f'{path.name} calls {call}'
