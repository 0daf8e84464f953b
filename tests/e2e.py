"""End-to-end helpers for tests: run the training / testing tools on a config over the toy data."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]

E2E_ITERS = 2
# a few iterations, validation once at the end, batch 2, no worker processes
E2E_SHORT = [
    f'train_cfg.max_iters={E2E_ITERS}', f'train_cfg.val_interval={E2E_ITERS}',
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False'
]
E2E_TEST_ONLY = E2E_SHORT[2:]


class EndToEnd:
    """Runs ``tools/train.py`` / ``tools/test.py`` (or ``mim``) on a config over the toy data."""

    def __init__(self, toy_data: Path, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = dict(os.environ, MMCLUSTER_TOY_DATA=str(toy_data), OMP_NUM_THREADS='1',
                        PYTHONPATH=f'{REPO}:{os.environ.get("PYTHONPATH", "")}')

    def run(self, cmd: List[str]) -> str:
        out = subprocess.run(cmd, env=self.env, cwd=REPO, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, f'{" ".join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}'
        return out.stdout + out.stderr

    def train(self, config: Path, extra: Optional[List[str]] = None,
              mim_scope: Optional[str] = None) -> Path:
        """Train E2E_ITERS iterations (+ validation); return the work dir."""
        work_dir = self.tmp_path / 'train'
        if mim_scope:
            cmd = [_mim(), 'train', mim_scope, str(config), '--gpus', '0']
        else:
            cmd = [sys.executable, 'tools/train.py', str(config)]
        self.run(cmd + ['--work-dir', str(work_dir), '--cfg-options', *E2E_SHORT, *(extra or [])])
        assert (work_dir / f'iter_{E2E_ITERS}.pth').is_file()
        return work_dir

    def test(self, config: Path, checkpoint: Path, mim_scope: Optional[str] = None) -> Dict:
        """Evaluate a checkpoint; return the metrics that the test run logged."""
        work_dir = self.tmp_path / 'test'
        if mim_scope:
            cmd = [_mim(), 'test', mim_scope, str(config), '--checkpoint', str(checkpoint),
                   '--gpus', '0']
        else:
            cmd = [sys.executable, 'tools/test.py', str(config), str(checkpoint)]
        self.run(cmd + ['--work-dir', str(work_dir), '--cfg-options', *E2E_TEST_ONLY])
        logged = [json.loads(p.read_text().splitlines()[-1]) for p in work_dir.glob('*/*.json')]
        assert logged, f'no metrics json in {work_dir}'
        return logged[-1]


def _mim() -> str:
    mim = Path(sys.executable).parent / 'mim'
    if not mim.is_file():
        pytest.skip('openmim is not installed')
    return str(mim)


def last_evaluation(work_dir: Path) -> Dict:
    """The last evaluation record mmengine wrote into ``<timestamp>/vis_data/scalars.json``."""
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    evaluations = [r for r in records if not any(k in r for k in ('loss', 'lr'))]
    assert evaluations, f'no evaluation record in {work_dir}'
    return evaluations[-1]


def check_metrics(metrics: Dict, keys: List[str]) -> None:
    """Each key is present and a number in [0, 100] (mmdet's COCO metrics lie in [0, 1])."""
    for key in keys:
        assert key in metrics, f'{key} missing from {sorted(metrics)}'
        assert isinstance(metrics[key], (int, float)) and 0 <= metrics[key] <= 100, (key, metrics)


# --------------------------------------------------------------------------- config checks
def build(cfg):
    """Build ``cfg.model`` with the registry of the config's own default scope."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def nparams(module) -> int:
    return sum(p.numel() for p in module.parameters())


def urls(obj) -> List[str]:
    """Every string in a (nested) config value that looks like a URL (a download at run time)."""
    if isinstance(obj, dict):
        return [u for v in obj.values() for u in urls(v)]
    if isinstance(obj, (list, tuple)):
        return [u for v in obj for u in urls(v)]
    return [obj] if isinstance(obj, str) and '://' in obj else []
