"""The toy-data baselines train and evaluate end to end with the real metrics.

Each config runs a few iterations through ``tools/train.py`` (with validation at the end) and is then
evaluated from its checkpoint by ``tools/test.py``; the same through ``mim train`` / ``mim test``
(``slow``). The metrics must come out as numbers in [0, 100] (mmdet's COCO metrics in [0, 1]).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')
pytest.importorskip('mmpretrain.models')

ITERS = 2
BASELINES = {
    'mask2former_r18_1xb4-toy_coco-panoptic.py':
    ('mmdet', ['coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco/bbox_mAP', 'coco/segm_mAP']),
    'mask2former_r18_1xb4-toy_coco.py': ('mmdet', ['coco/bbox_mAP', 'coco/segm_mAP']),
    'deformable-detr_r18_1xb4-toy_coco.py': ('mmdet', ['coco/bbox_mAP', 'coco/bbox_mAP_50']),
    'fpn_r18_1xb8-toy_ade20k-256x256.py': ('mmseg', ['mIoU', 'aAcc']),
    'resnet18_1xb32-toy_imagenet.py': ('mmpretrain', ['accuracy/top1']),
}
# a few iterations, validation once at the end, batch 2, no worker processes
SHORT = [
    f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False'
]


def _env(toy_data: Path, repo: Path) -> Dict[str, str]:
    return dict(os.environ, MMCLUSTER_TOY_DATA=str(toy_data), OMP_NUM_THREADS='1',
                PYTHONPATH=f'{repo}:{os.environ.get("PYTHONPATH", "")}')


def _run(cmd: List[str], env: Dict[str, str], cwd: Path) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f'{" ".join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}'
    return out.stdout + out.stderr


def _last_metrics(work_dir: Path) -> dict:
    """The last evaluation record that mmengine wrote into ``<timestamp>/vis_data/scalars.json``."""
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    evaluations = [r for r in records if not any(k in r for k in ('loss', 'lr'))]
    assert evaluations, f'no evaluation record in {work_dir}'
    return evaluations[-1]


def _check(metrics: dict, keys: List[str]) -> None:
    for key in keys:
        assert key in metrics, f'{key} missing from {sorted(metrics)}'
        assert isinstance(metrics[key], (int, float)) and 0 <= metrics[key] <= 100, (key, metrics)


@pytest.mark.parametrize('config', sorted(BASELINES))
def test_train_then_test_with_tools(config, toy_data, repo_root, tmp_path):
    scope, keys = BASELINES[config]
    cfg_path = repo_root / 'configs' / 'baselines' / config
    env = _env(toy_data, repo_root)
    work_dir = tmp_path / 'train'
    _run([sys.executable, 'tools/train.py', str(cfg_path), '--work-dir', str(work_dir),
          '--cfg-options', *SHORT], env, repo_root)
    _check(_last_metrics(work_dir), keys)
    checkpoint = work_dir / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()

    test_dir = tmp_path / 'test'
    _run([sys.executable, 'tools/test.py', str(cfg_path), str(checkpoint), '--work-dir',
          str(test_dir), '--cfg-options', *SHORT[2:]], env, repo_root)
    # tools/test.py logs the metrics to <timestamp>/<timestamp>.json
    logged = [json.loads(p.read_text().splitlines()[-1]) for p in test_dir.glob('*/*.json')]
    assert logged, f'no metrics json in {test_dir}'
    _check(logged[-1], keys)


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(BASELINES))
def test_train_then_test_with_mim(config, toy_data, repo_root, tmp_path):
    mim = shutil.which('mim', path=os.path.dirname(sys.executable))
    if mim is None:
        pytest.skip('openmim is not installed')
    scope, keys = BASELINES[config]
    cfg_path = repo_root / 'configs' / 'baselines' / config
    env = _env(toy_data, repo_root)
    work_dir = tmp_path / 'train'
    _run([mim, 'train', scope, str(cfg_path), '--gpus', '0', '--work-dir', str(work_dir),
          '--cfg-options', *SHORT], env, repo_root)
    _check(_last_metrics(work_dir), keys)
    test_dir = tmp_path / 'test'
    _run([mim, 'test', scope, str(cfg_path), '--checkpoint', str(work_dir / f'iter_{ITERS}.pth'),
          '--gpus', '0', '--work-dir', str(test_dir), '--cfg-options', *SHORT[2:]], env, repo_root)
    logged = [json.loads(p.read_text().splitlines()[-1]) for p in test_dir.glob('*/*.json')]
    assert logged, f'no metrics json in {test_dir}'
    _check(logged[-1], keys)
