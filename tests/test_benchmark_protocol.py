"""mmcluster.benchmark.protocol and the training-time clock it runs on (mmcluster.utils.toy_run.TrainClockHook):
the schedule against its definition, budget and validation by training time with a fake clock, the protocol's
config rewriting for one model per task, the mini toy-data preset, one short-mode run through tools/train.py, and
the command line's run selection (--family, --only, --baselines-only) and its error for an unknown family."""
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmcluster.benchmark import protocol as P
from mmcluster.datasets.toy_data import PRESETS, make_cls_scene, make_scene
from mmcluster.utils.toy_run import TrainClockHook


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakeRunner:
    """What TrainClockHook touches: the loop's iteration count and max_iters, the val loop, the optimiser."""

    def __init__(self, work_dir, clock, val_cost):
        self.iter = 0
        self.rank = 0
        self.work_dir = str(work_dir)
        self.train_loop = SimpleNamespace(_max_iters=10**9)
        self.optim_wrapper = SimpleNamespace(optimizer=SimpleNamespace(param_groups=[{'lr': 1.0}, {'lr': 0.1}]))
        self.validations = []  # iterations trained at each validation
        self.hook = None
        self.in_iter = False  # inside after_train_iter, runner.iter is the iteration being finished

        def run_val():
            self.hook.before_val_epoch(self)
            clock.t += val_cost  # validation time must not count as training time
            self.validations.append(self.iter + 1 if self.in_iter else self.iter)
            self.hook.after_val_epoch(self, {'acc': float(self.iter)})

        self.val_loop = SimpleNamespace(run=run_val)


def train(tmp_path, hook, clock, iter_s, val_cost=7.0):
    runner = FakeRunner(tmp_path, clock, val_cost)
    runner.hook = hook
    hook.before_train(runner)
    lrs = []
    while runner.iter < runner.train_loop._max_iters:
        hook.before_train_iter(runner, runner.iter)
        lrs.append([g['lr'] for g in runner.optim_wrapper.optimizer.param_groups])
        clock.t += iter_s
        runner.in_iter = True
        hook.after_train_iter(runner, runner.iter)
        runner.in_iter = False
        runner.iter += 1
    runner.val_loop.run()  # the loop's own validation at max_iters
    return runner, lrs


def test_clock_budget_and_periodic_validation_exclude_validation_time(tmp_path, monkeypatch):
    """1 minute of training at 1 s per iteration, validation every 0.25 minute costing 7 s each: 60 iterations
    (validation time does not count), validations after 15, 30, 45 training seconds and at the end."""
    clock = FakeClock()
    hook = TrainClockHook(minutes=1.0, val_minutes=0.25, clock='process')
    monkeypatch.setattr(hook, '_now', clock)
    runner, _ = train(tmp_path, hook, clock, iter_s=1.0)
    assert runner.iter == 60
    assert runner.validations == [15, 30, 45, 60]
    from mmcluster.utils.toy_run import read_run
    curve = read_run(tmp_path).val_curve
    assert [r['iter'] for r in curve] == [15, 30, 45, 60]
    assert [r['train_s'] for r in curve] == pytest.approx([15, 30, 45, 60])
    assert all(r['val_s'] == pytest.approx(7.0) for r in curve) and curve[-1]['acc'] == 60.0


def test_clock_learning_rate_follows_training_time(tmp_path, monkeypatch):
    """Warm-up over the first 10 % of the budget, then a cosine to 1 %: each group keeps its own base rate."""
    clock = FakeClock()
    hook = TrainClockHook(minutes=100 / 60, time_lr=(0.1, 0.01))
    monkeypatch.setattr(hook, '_now', clock)
    _, lrs = train(tmp_path, hook, clock, iter_s=1.0)
    for t, (lr0, lr1) in enumerate(lrs):  # the rate of the iteration starting at t seconds of training
        f = t / 100
        expected = max(f / 0.1, 1e-3) if f < 0.1 else 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (f - 0.1) / 0.9))
        assert lr0 == pytest.approx(expected) and lr1 == pytest.approx(0.1 * expected)
    assert lrs[10][0] == pytest.approx(1.0) and lrs[-1][0] == pytest.approx(0.01, abs=1e-3)


def test_clock_argument_errors():
    with pytest.raises(ValueError, match='clock'):
        TrainClockHook(minutes=1, clock='gpu')
    with pytest.raises(ValueError, match='time_lr'):
        TrainClockHook(minutes=1, time_lr=(1.5, 0.0))
    with pytest.raises(ValueError, match='positive'):
        TrainClockHook(minutes=0)


def test_protocol_runs_cover_every_toy_config(repo_root):
    """Every clustering toy config and the five baselines are in the protocol, each task with one baseline."""
    runs = P.protocol_runs('full')
    configs = {r.config for r in runs}
    toy = {p for p in (repo_root / 'configs').glob('*/*toy*.py') if p.parent.name != '_base_'}
    assert toy <= configs, sorted(str(p) for p in toy - configs)
    for task in P.TASKS:
        of_task = [r for r in runs if r.task == task]
        assert sum(r.is_baseline for r in of_task) == 1 and of_task[0].is_baseline
        assert all(r.metrics == P.TASK_METRICS[task] and r.family in P.FAMILIES for r in of_task)
    assert all(c.is_file() for c in configs)
    assert P.budget_minutes('full') <= 15 and P.budget_minutes('short') < P.budget_minutes('full')
    with pytest.raises(ValueError, match='mode'):
        P.protocol_runs('long')


@pytest.mark.parametrize('config,task', [
    ('baselines/deformable-detr_r18_1xb4-toy_coco.py', 'detection'),
    ('hcformer/hcformer_r18_1xb4-toy_coco-panoptic.py', 'panoptic'),
    ('kmax_deeplab/kmax-deeplab_r18_1xb2-toy_coco-panoptic.py', 'panoptic'),
    ('clustr/fpn_clustr-t_1xb8-toy_ade20k-256x256.py', 'semantic'),
])
def test_apply_protocol_sets_the_task_settings(repo_root, config, task):
    from mmengine.config import Config
    cfg = P.apply_protocol(Config.fromfile(str(repo_root / 'configs' / config)), task)
    schedule = P.SCHEDULES[task]
    side = schedule.input_size[0]
    assert cfg.train_dataloader.batch_size == schedule.batch_size
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == schedule.lr
    assert cfg.param_scheduler == []
    keys = (cfg.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys') or {}
    assert keys.get('backbone', {}).get('lr_mult', 1.0) == 1.0
    for loader in ('train_dataloader', 'val_dataloader'):
        for t in cfg[loader].dataset.pipeline:
            if t.type in ('Resize', 'RandomResize'):
                assert tuple(t.scale) == (2 * side, side), t
            if t.type == 'RandomCrop':
                assert tuple(t.crop_size) == (side, side)
            if t.type == 'RandomChoiceResize':
                assert [tuple(s) for s in t.scales] == [(2 * side, side * k // 8) for k in (7, 8, 9)]
    for aug in cfg.model.data_preprocessor.get('batch_augments') or []:
        assert tuple(aug['size']) == (side, side)
    if 'with_box_refine' in cfg.model:  # the Deformable-DETR-style detectors: refinement as the task says
        assert cfg.model.with_box_refine == schedule.box_refine
    if task == 'panoptic':
        thresholds = {k: v for k, v in cfg.model.test_cfg.items() if k in P.PANOPTIC_TEST_CFG}
        assert thresholds and all(v == P.PANOPTIC_TEST_CFG[k] for k, v in thresholds.items())


def test_mini_preset_scenes():
    """The mini preset: sides in [112, 176] (never a multiple of 32), 1-3 things, none tiny (the default
    data's tiny things are at most 30 px); classification images of the same sizes."""
    style = PRESETS['mini']
    counts = []
    for i in range(30):
        scene = make_scene(np.random.default_rng([7, i]), style=style)
        h, w = scene.stuff_map.shape
        assert style.min_side <= min(h, w) and max(h, w) <= style.max_side and h % 32 and w % 32
        counts.append(len(scene.things))
        areas = [(scene.instance_map == k + 1).sum() for k in range(len(scene.things))]
        assert min(areas) > 30
    assert 1 <= min(counts) and max(counts) <= 3
    cls = make_cls_scene(np.random.default_rng(3), 2, style)
    assert max(cls.image.shape[:2]) <= style.max_side


def test_short_protocol_run(tmp_path):
    """One model end to end in the short mode: the protocol's data, derived config, clock and curve."""
    data = P.prepare_data('short', tmp_path / 'data')
    run = next(r for r in P.protocol_runs('short') if r.task == 'classification' and r.is_baseline)
    result = P.run_protocol(run, tmp_path / 'run', 'short', data=data)
    assert result.iters == 2 and len(result.val_curve) == 1
    record = result.val_curve[0]
    assert record['iter'] == 2 and record['train_s'] > 0 and 0 <= record['accuracy/top1'] <= 100
    cfg_text = (tmp_path / 'run' / 'protocol_config.py').read_text()
    assert 'AdamW' in cfg_text and str(data) in cfg_text


def _trained_keys(monkeypatch, tmp_path, *argv):
    """The run keys ``protocol.main(argv)`` trains, with the data and each training replaced by a stand-in that
    returns one validation (the records and summary are still written, to ``tmp_path / 'out'``)."""
    from mmcluster.utils.toy_run import ToyRun
    trained = []

    def fake_run_protocol(run, work_dir, mode, data=None, **kwargs):
        trained.append(run.key)
        point = {'iter': 2, 'train_s': 1.0, 'val_s': 0.5, **{k: 1.0 for k in run.metrics}}
        return ToyRun(work_dir=Path(work_dir), metrics=dict(point), iters=2, val_curve=[point])

    monkeypatch.setattr(P, 'prepare_data', lambda mode, root=None: tmp_path / 'data')
    monkeypatch.setattr(P, 'run_protocol', fake_run_protocol)
    P.main(['--mode', 'short', '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'out'), *argv])
    return trained


def test_cli_selects_runs_by_family_key_and_config_name(monkeypatch, tmp_path):
    """``--family`` keeps the runs whose config lives in ``configs/<family>/`` (the folder is the family),
    ``baselines`` adds the tasks' baselines, and ``--only`` / ``--baselines-only`` narrow it further."""
    in_folders = lambda *folders: {r.key for r in P.protocol_runs('short') if r.config.parent.name in folders}
    assert all(r.family == r.config.parent.name for r in P.protocol_runs('short'))  # what the docs promise
    clustr = _trained_keys(monkeypatch, tmp_path, '--family', 'clustr')
    assert set(clustr) == in_folders('clustr') and len(clustr) == len(set(clustr)) == 5
    both = _trained_keys(monkeypatch, tmp_path, '--family', 'clustr', 'baselines')
    assert set(both) == in_folders('clustr', 'baselines') and len(both) == 10
    assert {p.stem for p in (tmp_path / 'out').glob('*.json')} == set(both)  # one record per trained run
    assert _trained_keys(monkeypatch, tmp_path, '--family', 'hcformer', '--only', 'panoptic__') == [
        'panoptic__hcformer_r18_1xb4-toy_coco-panoptic']
    assert _trained_keys(monkeypatch, tmp_path, '--family', 'kmax_deeplab', 'baselines', '--baselines-only') == [
        'classification__resnet18_1xb32-toy_imagenet', 'semantic__fpn_r18_1xb8-toy_ade20k-256x256',
        'detection__deformable-detr_r18_1xb4-toy_coco', 'instance__mask2former_r18_1xb4-toy_coco',
        'panoptic__mask2former_r18_1xb4-toy_coco-panoptic']
    # a config file name selects that config only (not its panoptic namesake, which a substring would)
    assert _trained_keys(monkeypatch, tmp_path, '--only', 'hcformer_r18_1xb4-toy_coco.py') == [
        'instance__hcformer_r18_1xb4-toy_coco']
    with pytest.raises(SystemExit, match='no run matches'):
        _trained_keys(monkeypatch, tmp_path, '--family', 'clustr', '--baselines-only')


def test_cli_rejects_an_unknown_family_listing_the_valid_ones(monkeypatch, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _trained_keys(monkeypatch, tmp_path, '--family', 'clustr', 'clusterfromer')
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'clusterfromer'" in err
    assert all(f"'{family}'" in err for family in
               ('context_cluster', 'clustr', 'hcformer', 'clusterformer', 'kmax_deeplab', 'baselines'))
