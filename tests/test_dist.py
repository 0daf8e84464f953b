"""2-process CPU training (tools/dist_train.sh, gloo) matches 1-process training on the same global batch."""
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

pytest.importorskip('mmpretrain.models')

import mmcluster  # noqa: E402,F401  (checkpoints load with weights_only via mmcluster.compat)
from mmcluster.utils.toy_run import read_scalars  # noqa: E402

ITERS = 4
GLOBAL_BATCH = 4

# Deterministic data (no random augmentation), no shuffling, frozen BN statistics: the per-sample
# losses are then independent of how the global batch is split over processes, and DDP's gradient
# averaging makes 2 x 2 samples step exactly like 1 x 4.
CONFIG = """
_base_ = {base!r}
model = dict(backbone=dict(norm_eval=True))
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline={{{{_base_.test_pipeline}}}}))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
train_cfg = dict(max_iters={iters}, val_interval=1000)
custom_hooks = [dict(type='GlobalLossHook')]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={iters}))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _losses(work_dir: Path) -> List[float]:
    curve, _ = read_scalars(work_dir)
    assert curve, f'no training records in {work_dir}'
    return [r['global_loss'] for r in curve if 'global_loss' in r]


def _run(cmd: List[str], env: Dict[str, str], cwd: Path) -> None:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f'{" ".join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}'


@pytest.mark.dist
def test_two_cpu_processes_match_one(toy_data, repo_root, tmp_path):
    config = tmp_path / 'dist_resnet18_toy.py'
    config.write_text(CONFIG.format(
        base=str(repo_root / 'configs/baselines/resnet18_1xb32-toy_imagenet.py'), iters=ITERS))
    env = dict(os.environ, MMCLUSTER_TOY_DATA=str(toy_data), PYTHON=sys.executable,
               OMP_NUM_THREADS='1', PORT=str(_free_port()))

    _run(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(tmp_path / 'two'),
          '--cfg-options', f'train_dataloader.batch_size={GLOBAL_BATCH // 2}'], env, repo_root)
    _run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(tmp_path / 'one'),
          '--cfg-options', f'train_dataloader.batch_size={GLOBAL_BATCH}'], env, repo_root)

    two, one = _losses(tmp_path / 'two'), _losses(tmp_path / 'one')
    assert len(one) == len(two) == ITERS
    # the model learns, so the later losses test the gradient averaging, not just the same init
    assert one[0] != pytest.approx(one[-1], rel=1e-3)
    assert two == pytest.approx(one, rel=2e-3, abs=1e-4)

    import torch
    state_two = torch.load(tmp_path / 'two' / f'iter_{ITERS}.pth')['state_dict']
    state_one = torch.load(tmp_path / 'one' / f'iter_{ITERS}.pth')['state_dict']
    for name, value in state_one.items():
        torch.testing.assert_close(state_two[name], value, rtol=1e-3, atol=1e-4, msg=name)
