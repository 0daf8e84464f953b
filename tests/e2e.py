"""End-to-end helpers for tests: a few iterations of a config on the toy data, through
:mod:`mmcluster.utils.toy_run` (``tools/train.py`` / ``tools/test.py``, or ``mim``), and config checks."""
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import yaml
from conftest import REPO

from mmcluster.utils.toy_run import check_metrics, evaluate_checkpoint, read_run, run_config

__all__ = ['E2E_ITERS', 'EndToEnd', 'build', 'check_metrics', 'family_configs', 'last_evaluation',
           'mask2former_train_cfg', 'nparams', 'published', 'urls']

E2E_ITERS = 2
E2E_BATCH = 2
TIMEOUT_S = 900


class EndToEnd:
    """Trains E2E_ITERS iterations of a config (validation once at the end) and evaluates checkpoints."""

    def __init__(self, toy_data: Path, tmp_path: Path) -> None:
        self.toy_data = toy_data
        self.tmp_path = tmp_path

    def train(self, config: Path, extra: Optional[List[str]] = None, mim_scope: Optional[str] = None) -> Path:
        """Train (``mim train <mim_scope>`` when given); return the work dir (``iter_{E2E_ITERS}.pth`` in it)."""
        work_dir = self.tmp_path / 'train'
        try:
            run = run_config(config, work_dir, iters=E2E_ITERS, batch_size=E2E_BATCH, data=self.toy_data,
                             cfg_options=extra, mim=mim_scope, timeout=TIMEOUT_S)
        except FileNotFoundError as e:
            if mim_scope and 'openmim' in str(e):
                pytest.skip(str(e))
            raise
        assert run.checkpoint == work_dir / f'iter_{E2E_ITERS}.pth', run
        return work_dir

    def test(self, config: Path, checkpoint: Path, mim_scope: Optional[str] = None) -> Dict:
        """Evaluate a checkpoint; return the metrics of the test run."""
        return evaluate_checkpoint(config, checkpoint, self.tmp_path / 'test', data=self.toy_data, mim=mim_scope,
                                   timeout=TIMEOUT_S)

    def train_then_test(self, config: Path, metrics: List[str], mim_scope: Optional[str] = None) -> None:
        """Train, then test the last checkpoint; both evaluations must report ``metrics`` (finite)."""
        work_dir = self.train(config, mim_scope=mim_scope)
        check_metrics(last_evaluation(work_dir), metrics)
        check_metrics(self.test(config, work_dir / f'iter_{E2E_ITERS}.pth', mim_scope=mim_scope), metrics)


def last_evaluation(work_dir: Path) -> Dict:
    """The last evaluation record of the training run in ``work_dir``."""
    metrics = read_run(work_dir).metrics
    assert metrics, f'no evaluation record in {work_dir}'
    return metrics


# --------------------------------------------------------------------------- model pieces
def mask2former_train_cfg(num_points: int, scope: str = 'mmdet.') -> Dict:
    """Mask2Former's matching ``train_cfg`` (Hungarian: class 2, mask BCE 5, dice 5; point sampling) for mask
    heads, with mmdet's task utils named with ``scope`` (mmseg configs need ``'mmdet.'``)."""
    return dict(
        num_points=num_points, oversample_ratio=3.0, importance_sample_ratio=0.75,
        assigner=dict(type=f'{scope}HungarianAssigner', match_costs=[
            dict(type=f'{scope}ClassificationCost', weight=2.0),
            dict(type=f'{scope}CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
            dict(type=f'{scope}DiceCost', weight=5.0, pred_act=True, eps=1.0)]),
        sampler=dict(type=f'{scope}MaskPseudoSampler'))


# --------------------------------------------------------------------------- config checks
def family_configs(family: str, toolkits=('mmdet', 'mmseg', 'mmpretrain')) -> Tuple[Path, List[str]]:
    """``configs/<family>`` and the names of its configs; skips the module unless the toolkits are installed."""
    for toolkit in toolkits:
        pytest.importorskip(f'{toolkit}.models')
    folder = REPO / 'configs' / family
    return folder, sorted(p.name for p in folder.glob('*.py'))


def published(family: str) -> Dict:
    """The family's section of ``tests/data/published.yml`` (the one place published numbers live)."""
    return yaml.safe_load((REPO / 'tests' / 'data' / 'published.yml').read_text())[family]


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
