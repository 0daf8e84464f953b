"""Distributed training of clustering models (issue 13 item 6), on the CPU with gloo.

* Two processes follow one, a clustering model of every family: CoC-Tiny classification (mmpretrain; the token
  mixer clusters every image's points), and, marked slow, ClusterFormer-Tiny classification (recurrent
  cross-attention clustering), ClusTR-T Semantic FPN (mmseg; DPC-kNN clustering in every attention layer),
  HC-FCN on HCResNet-18 (mmseg; HCFormer's hierarchical clustering and cluster decoding, SyncBN) and
  kMaX-DeepLab R-18 panoptic (mmdet; k-means cross-attention, sampled pixel losses, SyncBN) train ``ITERS``
  iterations with SGD on a
  global batch of ``GLOBAL_BATCH`` images split over two torchrun processes (``torch.distributed.run``, launcher
  ``pytorch``, gloo through :mod:`mmcluster.compat`); the mean loss over ranks
  (:class:`~mmcluster.engine.hooks.GlobalLossHook`) and the final weights must equal those of one process
  training on the whole batch. What makes the split invisible, and why each setting is there:

  - deterministic data (the test pipeline, fixed-size images, no shuffling): random augmentations draw from
    per-process generators, and padding to the largest image of a *per-rank* batch changes the padded size;
  - BatchNorm statistics over the global batch: the CoC classifier normalises with GroupNorm(1, C) and ClusTR
    with LayerNorm; the Semantic FPN head's BatchNorm is replaced by GroupNorm, and kMaX-DeepLab's by SyncBN (its
    official norm), which :mod:`mmcluster.compat` all-reduces over gloo on the CPU (plain BN would normalise each
    rank's half-batch separately, a different model);
  - no random draws in the training step: each process draws its own dropout masks (the Semantic FPN head's
    ``dropout_ratio=0.1``, set to 0 here), stochastic-depth paths (``drop_path_rate=0`` in these toy configs) and
    sampled points, so a split batch draws different numbers than the whole one (kMaX's auxiliary semantic
    head: ``aspp_dropout=0``);
  - the clusterings are computed per image (DPC-kNN's density and distance indicators, CoC's centres pooled per
    image, kMaX's k-means assignments and Hungarian matching), so they do not depend on the batch: a batch of two
    equals two of one (``tests/test_reliability/test_numerics.py``), and kMaX's losses are means over images;
  - sampled losses sample everything: kMaX-DeepLab's pixel-wise losses draw ``sample_k`` (1024) of the stride-4
    pixels by Gumbel top-k, which at 64x96 (384 pixels) takes every pixel, in a random order the losses do not
    depend on. Mask2Former-style point sampling (HCFormer's head, mmdet's losses) draws continuous random points
    per rank and normalises its class loss by each rank's own weight sum, so its two-process run is not the
    one-process run sample for sample; it is not part of this comparison.

  The one-process reference runs in the pytest process (the same Runner code with ``launcher='none'``); the two
  processes run this file as their script (``--worker``).
* A worker that dies (SIGKILL to rank 1 mid-training) ends the whole run within a bounded time with torchrun's
  error naming the rank and the signal, instead of the other rank waiting in an all-reduce forever. A worker
  that hangs (SIGSTOP: alive but silent; slow) ends it after the process-group timeout
  (``--cfg-options env_cfg.dist_cfg.timeout=SECONDS``, :data:`HANG_TIMEOUT_S` here), the waiting rank naming
  the timeout.
* ``tools/slurm_train.sh`` / ``tools/slurm_test.sh`` hand ``srun`` the arguments mmdet's scripts do (a fake
  ``srun`` on ``PATH`` records them; there is no SLURM here).
"""
import argparse
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
ITERS = 2
GLOBAL_BATCH = 4
WORLD = 2

#: mmseg training data without random augmentation or per-batch padding: every image resized to 96x64
FIXED_SIZE_SEG = {
    'train_dataloader.dataset.pipeline': [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='Resize', scale=(96, 64), keep_ratio=False), dict(type='PackSegInputs')],
    'model.data_preprocessor.size': (64, 96),
}
#: config and the cfg options that make the global batch split-invariant (see the module docstring)
CASES = {
    'coc_cls': ('configs/context_cluster/coc-tiny_1xb32-toy_imagenet.py', {
        'train_dataloader.dataset.pipeline': 'test_pipeline',
    }),
    'clustr_fpn_seg': ('configs/clustr/fpn_clustr-t_1xb8-toy_ade20k-256x256.py', {
        **FIXED_SIZE_SEG,
        'model.decode_head.norm_cfg': dict(type='GN', num_groups=8, requires_grad=True),
        'model.decode_head.dropout_ratio': 0.,
    }),
    'kmax_panoptic': ('configs/kmax_deeplab/kmax-deeplab_r18_1xb2-toy_coco-panoptic.py', {
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile', to_float32=True),
            dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
            dict(type='Resize', scale=(96, 64), keep_ratio=False), dict(type='PackDetInputs')],
        # the official norm (SyncBN, ./_base_/kmax_deeplab.py), on gloo through mmcluster.compat
        'model.backbone.norm_cfg': dict(type='SyncBN', requires_grad=True),
        'model.panoptic_head.norm_cfg': dict(type='SyncBN', eps=1e-3, momentum=0.1),
        'model.panoptic_head.aux_semantic_head.aspp_dropout': 0.,
    }),
    'clusterformer_cls': ('configs/clusterformer/clusterformer-tiny_1xb32-toy_imagenet.py', {
        'train_dataloader.dataset.pipeline': 'test_pipeline',
    }),
    # HCFormer's hierarchical clustering (HCResNet's clustering pairs, HCFormerNeck) decoded by HC-FCN's per-pixel
    # head (configs/hcformer/hc-fcn-32s_*.py): the HCFormer pixel decoder without Mask2Former's point sampling
    'hcfcn_seg': ('configs/hcformer/hcformer_r18_1xb8-toy_ade20k-256x256.py', {
        **FIXED_SIZE_SEG,
        'model.backbone.norm_cfg': dict(type='SyncBN', requires_grad=True),
        'model.decode_head': dict(
            _delete_=True, type='HCFCNHead', in_channels=512, channels=128, num_convs=2, concat_input=True,
            dropout_ratio=0., num_classes=150, norm_cfg=dict(type='SyncBN', requires_grad=True), align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    }),
}
#: a few minutes on two busy cores (DPC-kNN at every layer, two processes): run by `make test-slow`
SLOW_CASES = ('clustr_fpn_seg', 'kmax_panoptic', 'hcfcn_seg', 'clusterformer_cls')


def case_config(name: str, work_dir: Path, batch_size: int, launcher: str, iters: int = ITERS):
    """The config of ``name`` for ``iters`` iterations at ``batch_size`` per process (no validation, every loss
    logged, a checkpoint at the end, no workers, no shuffling)."""
    from mmengine.config import Config
    path, options = CASES[name]
    cfg = Config.fromfile(str(REPO / path))
    options = dict(options)
    if options.get('train_dataloader.dataset.pipeline') == 'test_pipeline':
        options['train_dataloader.dataset.pipeline'] = cfg.test_pipeline
    cfg.merge_from_dict({
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 10**6, 'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 1, 'log_processor.window_size': 1, 'randomness.seed': 0,
        'train_dataloader.batch_size': batch_size, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.sampler': dict(type='DefaultSampler', shuffle=False),
        # SGD, not the configs' AdamW: AdamW's first steps move every weight by about lr * sign(gradient), so the
        # reduction-order noise of a near-zero gradient could flip a step; SGD's step is proportional to the
        # gradient, so equal weights mean equal averaged gradients
        'optim_wrapper.optimizer': dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
        **options})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.launcher = launcher
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{name}_{launcher}_{os.getpid()}'
    cfg.visualizer.name = cfg.experiment_name
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='GlobalLossHook')]
    return cfg


def train_case(name: str, work_dir: Path, batch_size: int, launcher: str) -> None:
    import mmcluster  # noqa: F401  (registration, gloo on the CPU)
    from mmengine.runner import Runner
    Runner.from_cfg(case_config(name, work_dir, batch_size, launcher)).train()


def global_losses(work_dir: Path) -> List[float]:
    from mmcluster.utils.toy_run import read_scalars
    curve, _ = read_scalars(work_dir)
    return [r['global_loss'] for r in curve if 'global_loss' in r]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env(toy_data: Path) -> Dict[str, str]:
    return dict(os.environ, MMCLUSTER_TOY_DATA=str(toy_data), OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')


# --------------------------------------------------------------------------- two processes follow one
@pytest.mark.dist
@pytest.mark.parametrize('name', [n if n not in SLOW_CASES else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(CASES)])
def test_two_processes_follow_one(name, toy_data, tmp_path, monkeypatch):
    pytest.importorskip('mmseg.models')
    pytest.importorskip('mmpretrain.models')
    import torch
    names = [name]
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={WORLD}', f'--master_port={free_port()}',
           __file__, '--worker', str(tmp_path / 'two'), '--batch-size', str(GLOBAL_BATCH // WORLD), *names]
    two = subprocess.run(cmd, env=_env(toy_data), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, f'{" ".join(cmd)}\n{two.stdout[-3000:]}\n{two.stderr[-6000:]}'

    monkeypatch.setenv('MMCLUSTER_TOY_DATA', str(toy_data))
    for name in names:
        train_case(name, tmp_path / 'one' / name, GLOBAL_BATCH, 'none')
        one, split = global_losses(tmp_path / 'one' / name), global_losses(tmp_path / 'two' / name)
        assert len(one) == len(split) == ITERS, (name, one, split)
        # the second step's loss moves (the first step trained the model), so equal losses after it test the
        # averaged gradients, not only the equal initialisation
        assert one[0] != pytest.approx(one[-1], rel=1e-4), (name, one)
        assert split == pytest.approx(one, rel=1e-4, abs=1e-5), (name, one, split)
        want = torch.load(tmp_path / 'one' / name / f'iter_{ITERS}.pth', map_location='cpu')['state_dict']
        got = torch.load(tmp_path / 'two' / name / f'iter_{ITERS}.pth', map_location='cpu')['state_dict']
        # SGD steps of lr 0.01 times gradients of ~1e-3..1e-1 move weights by 1e-5..1e-3: a wrong average (a
        # sum, a rank's own gradient) would differ by as much; reduction-order noise stays below 1e-6 (measured:
        # 7e-9 CoC, 5e-7 HC-FCN, 1e-6 kMaX)
        worst = max(float((got[key] - value).abs().max()) for key, value in want.items() if value.is_floating_point())
        print(f'{name}: losses {one} (one process) vs {split} (two); largest weight difference {worst:.2e}')
        for key, value in want.items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=5e-6, msg=f'{name}: {key}')


# --------------------------------------------------------------------------- a worker dies
def _children(pid: int) -> List[int]:
    out = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _rank_of(pid: int) -> Optional[int]:
    try:
        env = (Path('/proc') / str(pid) / 'environ').read_bytes().split(b'\0')
    except OSError:
        return None
    ranks = [int(e.split(b'=', 1)[1]) for e in env if e.startswith(b'RANK=')]
    return ranks[0] if ranks else None


def _workers(root: int) -> Dict[int, int]:
    """rank -> pid of the training processes below ``root`` (bash -> torchrun -> workers)."""
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child in _children(pid):
            rank = _rank_of(child)
            if rank is not None and 'train.py' in (Path('/proc') / str(child) / 'cmdline').read_bytes().decode(
                    errors='replace'):
                found[rank] = child
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return (Path('/proc') / str(pid) / 'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


#: seconds from the kill to the end of the run that count as "bounded" (torchrun's monitor notices a dead worker
#: within its monitor interval, then stops the other one)
DEATH_BOUND_S = 120
#: the process-group timeout of the hang case (``env_cfg.dist_cfg.timeout``; mmengine's default is torch's 30
#: minutes): the rank left waiting in an all-reduce gives up after it, then torchrun stops the hung one (SIGTERM,
#: SIGKILL 30 s later, since a stopped process does not act on SIGTERM)
HANG_TIMEOUT_S = 20
HANG_BOUND_S = HANG_TIMEOUT_S + 30 + 60


@pytest.mark.dist
@pytest.mark.parametrize('fault', ['dies', pytest.param('hangs', marks=pytest.mark.slow)])
def test_a_failed_worker_ends_the_run(fault, toy_data, tmp_path):
    """Rank 1 dies (SIGKILL) or hangs (SIGSTOP: alive, silent) mid-training; the run must end with an error that
    names the failure within a bounded time, and no worker may outlive it."""
    pytest.importorskip('mmpretrain.models')
    config = tmp_path / 'coc_long.py'
    config.write_text(f'_base_ = {str(REPO / CASES["coc_cls"][0])!r}\n'
                      'train_dataloader = dict(num_workers=0, persistent_workers=False, batch_size=2)\n'
                      'train_cfg = dict(max_iters=100000, val_interval=100000)\n'
                      'default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100000))\n')
    options = ['--cfg-options', f'env_cfg.dist_cfg.timeout={HANG_TIMEOUT_S}'] if fault == 'hangs' else []
    bound = HANG_BOUND_S if fault == 'hangs' else DEATH_BOUND_S
    log = tmp_path / 'dist.log'
    env = dict(_env(toy_data), PORT=str(free_port()), PYTHON=sys.executable)
    with open(log, 'w') as out:
        proc = subprocess.Popen(['bash', 'tools/dist_train.sh', str(config), str(WORLD), '--work-dir',
                                 str(tmp_path / 'work'), *options], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    workers: Dict[int, int] = {}
    try:
        deadline = time.time() + 600
        while not re.search(r'Iter\(train\) \[\s*2/', log.read_text(errors='replace')):
            assert proc.poll() is None, f'the run ended before training:\n{log.read_text()[-4000:]}'
            assert time.time() < deadline, f'training did not start:\n{log.read_text()[-4000:]}'
            time.sleep(1)
        workers = _workers(proc.pid)
        assert sorted(workers) == list(range(WORLD)), workers
        failed = time.time()
        os.kill(workers[1], signal.SIGKILL if fault == 'dies' else signal.SIGSTOP)
        rc = proc.wait(timeout=bound)
        ended_after = time.time() - failed
        time.sleep(1)
        survivors = [pid for pid in workers.values() if _alive(pid)]
    finally:  # torchrun starts its workers in their own sessions: end them by pid too
        for pid in workers.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors='replace')
    assert rc != 0, text[-4000:]
    assert 'ChildFailedError' in text and 'rank' in text, text[-4000:]
    if fault == 'dies':
        assert 'SIGKILL' in text, text[-4000:]
    else:  # the waiting rank names the timeout
        assert re.search(r'[Tt]imed out|timeout', text), text[-4000:]
    assert not survivors, f'workers {survivors} outlived the run (waiting in a collective?)'
    print(f'rank 1 {fault}: the run ended {ended_after:.1f} s later (bound {bound} s), exit status {rc}')


# --------------------------------------------------------------------------- SLURM scripts (fake srun)
FAKE_SRUN = r'''#!/usr/bin/env bash
# records its arguments, one JSON object per call (there is no SLURM here)
python3 - "$@" <<'EOF' >> "$FAKE_SRUN_LOG"
import json, sys
print(json.dumps(dict(argv=sys.argv[1:])))
EOF
'''


@pytest.fixture
def fake_srun(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / 'srun.jsonl'
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    monkeypatch.setenv('FAKE_SRUN_LOG', str(log))

    def calls() -> List[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls


def _option(argv: List[str], name: str) -> str:
    values = [a.split('=', 1)[1] for a in argv if a.startswith(f'{name}=')]
    assert len(values) == 1, (name, argv)
    return values[0]


def test_slurm_train_hands_srun_the_job(fake_srun, tmp_path):
    env = dict(os.environ, GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='4', SRUN_ARGS='--quotatype=auto')
    out = subprocess.run(['bash', 'tools/slurm_train.sh', 'mypartition', 'hcformer_r50', 'configs/x.py',
                          str(tmp_path / 'work'), '--cfg-options', 'train_cfg.max_iters=10'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (call, ) = fake_srun()
    argv = call['argv']
    assert _option(argv, '--partition') == 'mypartition' and _option(argv, '--job-name') == 'hcformer_r50'
    assert _option(argv, '--gres') == 'gpu:8' and _option(argv, '--ntasks') == '16'
    assert _option(argv, '--ntasks-per-node') == '8' and _option(argv, '--cpus-per-task') == '4'
    assert '--kill-on-bad-exit=1' in argv and '--quotatype=auto' in argv  # one dead task ends the job
    command = argv[argv.index('-u') - 1:]
    assert Path(command[0]).name.startswith('python') and command[2].endswith('tools/train.py')
    assert command[3:] == ['configs/x.py', f'--work-dir={tmp_path / "work"}', '--launcher=slurm',
                           '--cfg-options', 'train_cfg.max_iters=10']


def test_slurm_test_hands_srun_the_job(fake_srun, tmp_path):
    env = dict(os.environ, GPUS='4')
    out = subprocess.run(['bash', 'tools/slurm_test.sh', 'p1', 'eval', 'configs/x.py', 'ckpt.pth', '--out', 'r.pkl'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (call, ) = fake_srun()
    argv = call['argv']
    assert _option(argv, '--partition') == 'p1' and _option(argv, '--ntasks') == '4'
    assert _option(argv, '--gres') == 'gpu:4'
    assert '--kill-on-bad-exit=1' in argv
    command = argv[argv.index('-u') - 1:]
    assert command[2].endswith('tools/test.py')
    assert command[3:] == ['configs/x.py', 'ckpt.pth', '--launcher=slurm', '--out', 'r.pkl']


def test_slurm_scripts_name_their_arguments(fake_srun):
    for script, usage in (('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR'),
                          ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT')):
        out = subprocess.run(['bash', f'tools/{script}', 'p'], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and usage in out.stderr, (script, out.stderr)
    assert fake_srun() == []


# --------------------------------------------------------------------------- worker (torchrun runs this file)
def _worker(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--worker', required=True, help='root of the work dirs')
    parser.add_argument('--batch-size', type=int, required=True)
    parser.add_argument('--launcher', default='pytorch', choices=['pytorch', 'none'])
    parser.add_argument('cases', nargs='+', choices=sorted(CASES))
    args = parser.parse_args(argv)
    for name in args.cases:
        train_case(name, Path(args.worker) / name, args.batch_size, args.launcher)


if __name__ == '__main__':
    _worker()
