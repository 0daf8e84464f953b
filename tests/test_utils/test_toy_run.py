"""mmcluster.utils.toy_run: reading what mmengine writes into a work dir, toy-data readiness, argument errors,
a failing run, and (slow) a time-budget run through tools/train.py with its learning curve."""
import json
import os

import pytest

from mmcluster.utils.toy_run import (ToyRunError, ensure_toy_data, read_run, read_scalars, read_test_metrics,
                                     run_config, toy_data_ready)


def write_lines(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_read_run_takes_the_latest_run(tmp_path):
    """Two runs in one work dir: the later timestamp's records count, the iterations are the larger of the last
    logged iteration and the last checkpoint, and the curve keeps every training record in order."""
    write_lines(tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json',
                [dict(lr=0.1, loss=9.0, iter=1, time=1.0), dict(top1=1.0, step=1)])
    write_lines(tmp_path / '20260102_000000' / 'vis_data' / 'scalars.json', [
        dict(lr=0.1, loss=3.0, loss_cls=3.0, iter=1, time=5.0),
        dict(lr=0.1, loss=2.0, loss_cls=2.0, iter=2, time=1.5),
        dict(top1=40.0, step=2),
        dict(lr=0.1, loss=1.0, loss_cls=1.0, iter=3, time=2.5),
        dict(top1=55.0, step=3),
    ])
    for n in (2, 4):
        (tmp_path / f'iter_{n}.pth').write_bytes(b'')
    run = read_run(tmp_path)
    assert run.metrics == dict(top1=55.0, step=3) and [e['top1'] for e in run.evaluations] == [40.0, 55.0]
    assert run.iters == 4 and run.checkpoint == tmp_path / 'iter_4.pth'
    assert [r['loss'] for r in run.curve] == [3.0, 2.0, 1.0]
    assert run.s_per_iter == pytest.approx(2.0)  # (1.5 + 2.5) / 2: the warm-up iteration left out
    assert run.as_dict()['metrics'] == run.metrics
    assert read_scalars(tmp_path / 'nothing') == ([], [])
    empty = read_run(tmp_path / 'nothing')
    assert empty.iters == 0 and empty.metrics == {} and empty.checkpoint is None

    write_lines(tmp_path / 'test' / '20260103_000000' / '20260103_000000.json', [{'mIoU': 12.5}])
    assert read_test_metrics(tmp_path / 'test') == {'mIoU': 12.5}
    with pytest.raises(FileNotFoundError, match='metrics json'):
        read_test_metrics(tmp_path / 'nothing')


def test_ensure_toy_data_generates_once(tmp_path):
    root = tmp_path / 'toy'
    assert not toy_data_ready(root, ('imagenet', ))
    assert ensure_toy_data(root, tasks=('imagenet', ), verbose=False, num_cls_per_class=1) == root.resolve()
    assert toy_data_ready(root, ('imagenet', )) and not toy_data_ready(root, ('coco', ))
    stamp = root / 'toy_data.json'
    before = stamp.stat().st_mtime_ns
    ensure_toy_data(root, tasks=('imagenet', ), verbose=False, num_cls_per_class=1)
    assert stamp.stat().st_mtime_ns == before  # present: not generated again


def test_argument_errors(tmp_path, repo_root):
    config = repo_root / 'configs' / 'baselines' / 'resnet18_1xb32-toy_imagenet.py'
    with pytest.raises(FileNotFoundError, match='not found'):
        run_config(tmp_path / 'missing.py', tmp_path / 'w', iters=1)
    with pytest.raises(ValueError, match='minutes'):
        run_config(config, tmp_path / 'w', minutes=0)
    with pytest.raises(ValueError, match='iters'):
        run_config(config, tmp_path / 'w', iters=0)
    with pytest.raises(ValueError, match='time budget'):
        run_config(config, tmp_path / 'w', minutes=1, mim='mmpretrain')
    with pytest.raises(ValueError, match="'mmdet', 'mmseg', 'mmpretrain'"):
        run_config(config, tmp_path / 'w', iters=1, mim='mmcls')


FAKE_TRAIN = """import json, os, sys
print(json.dumps(dict(argv=sys.argv[1:], data=os.environ['MMCLUSTER_TOY_DATA'], omp=os.environ['OMP_NUM_THREADS'])))
sys.exit(3)
"""


def test_command_line_and_failure(tmp_path, monkeypatch, repo_root):
    """The command a run gets (budget, loaders, logging, options, environment) and a failing run's error, with a
    stand-in for tools/train.py that prints what it was given and fails."""
    from mmcluster.utils import toy_run
    fake = tmp_path / 'train.py'
    fake.write_text(FAKE_TRAIN)
    monkeypatch.setattr(toy_run, '_tool', lambda name: str(fake))
    config = repo_root / 'configs' / 'baselines' / 'resnet18_1xb32-toy_imagenet.py'
    with pytest.raises(ToyRunError, match='exited with 3') as info:
        run_config(config, tmp_path / 'work', iters=3, minutes=0.5, batch_size=2, data=tmp_path / 'data',
                   cfg_options={'model.head.num_classes': 5}, threads=2)
    args = json.loads((tmp_path / 'work' / 'run.log').read_text().splitlines()[0])
    assert args['data'] == str((tmp_path / 'data').resolve()) and args['omp'] == '2'
    argv = args['argv']
    assert argv[:4] == [str(config), '--time-budget', '0.5', '--work-dir'] and argv[4] == str(tmp_path / 'work')
    options = argv[argv.index('--cfg-options') + 1:]
    assert options[:3] == ['train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3']
    assert {'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'default_hooks.logger.interval=1'} <= set(options)
    assert options[-1] == 'model.head.num_classes=5'  # the caller's options come last and win
    assert '--time-budget' in str(info.value)  # the message names the command and shows the log


@pytest.mark.slow
def test_time_budget_run(toy_data, repo_root, tmp_path):
    """Half a minute of the toy ResNet-18 classifier: the budget (not max_iters) ends the run, which then
    checkpoints and validates once; one curve point per iteration."""
    config = repo_root / 'configs' / 'baselines' / 'resnet18_1xb32-toy_imagenet.py'
    run = run_config(config, tmp_path / 'work', minutes=0.5, data=toy_data, batch_size=4,
                     env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert run.iters >= 2 and run.checkpoint == tmp_path / 'work' / f'iter_{run.iters}.pth'
    assert [r['iter'] for r in run.curve] == list(range(1, run.iters + 1))
    assert len(run.evaluations) == 1 and 0 <= run.metrics['accuracy/top1'] <= 100
    assert run.wall_s > 30
