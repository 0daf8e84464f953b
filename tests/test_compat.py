"""Each fix of mmcluster.compat, shown to be needed: these tests fail without it."""
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmcluster  # noqa: F401  (applies the fixes)
from mmcluster import compat


class _Regressor(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, y, mode='loss'):
        out = self.linear(x)
        if mode == 'loss':
            return dict(loss=((out - y)**2).mean())
        return out


class _Line(Dataset):

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i):
        return dict(x=torch.tensor([i / 8, 1.0]), y=torch.tensor([2 * i / 8]))


def _runner(work_dir, max_iters, **kwargs) -> Runner:
    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Line(),
            batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        default_scope='mmengine',
        **kwargs)


def test_checkpoint_save_load_resume_with_weights_only(tmp_path):
    runner = _runner(tmp_path / 'a', max_iters=4)
    runner.train()
    path = tmp_path / 'a' / 'iter_4.pth'
    # torch >= 2.6 default: weights_only=True. Without the fix: "Unsupported global ... HistoryBuffer"
    # and then "builtins.getattr" (HistoryBuffer pickled bound methods).
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) >= {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == pytest.approx(
        runner.message_hub.get_scalar('train/loss').current())
    # The statistics still work after a reload (they are class-level registrations).
    assert ckpt['message_hub']['log_scalars']['train/lr'].mean() > 0

    # Resume through the runner continues at iteration 4 with the same weights and optimizer state.
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    resumed = _runner(tmp_path / 'b', max_iters=6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    restarted = _runner(tmp_path / 'c', max_iters=2, load_from=str(path), resume=True)
    restarted.load_or_resume()
    assert restarted.iter == 4
    for name, value in runner.model.state_dict().items():
        torch.testing.assert_close(restarted.model.state_dict()[name], value)
    # MultiStepLR milestone at 3 has been passed: lr decayed by 0.1 (and the Counter survived).
    assert restarted.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.001)


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_untrusted_pickle_is_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_history_buffer_pickles_data_only():
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.0)
    buffer.update(3.0)
    assert 'statistics_methods' not in buffer.__getstate__()
    clone = pickle.loads(pickle.dumps(buffer))
    assert clone.mean() == 2.0 and clone.max() == 3.0


_DIST_SNIPPET = textwrap.dedent("""
    import os
    import mmcluster  # noqa: F401
    import torch, torch.nn as nn
    from mmengine.dist import init_dist, get_world_size, all_reduce
    from mmengine.model import MMDistributedDataParallel, BaseModel
    init_dist('pytorch', backend='nccl')  # what mmengine configs say; no GPU here
    assert torch.distributed.get_backend() == 'gloo'
    t = torch.ones(1); all_reduce(t)
    class M(BaseModel):
        def __init__(self):
            super().__init__(); self.l = nn.Linear(2, 2)
        def forward(self, x, mode='tensor'):
            return self.l(x)
    wrapped = MMDistributedDataParallel(module=M(), device_ids=[int(os.environ['LOCAL_RANK'])])
    print('OK', get_world_size(), float(t))
""")


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path of the launcher')
def test_pytorch_launcher_and_ddp_on_cpu(tmp_path):
    script = tmp_path / 'dist.py'
    script.write_text(_DIST_SNIPPET)
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(29400 + os.getpid() % 500))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'OK 1 1.0' in out.stdout


_SYNC_BN_SNIPPET = textwrap.dedent("""
    import os, sys
    import torch, torch.nn as nn
    import torch.multiprocessing as mp

    def rank_main(rank, world, init_file, out_dir):
        import mmcluster  # noqa: F401
        torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                                             world_size=world)
        torch.manual_seed(0)
        x = torch.randn(5, 3, 4, 2, dtype=torch.float64) * 3 + 1   # the global batch, split by rank
        target = torch.randn(5, 3, 4, 2, dtype=torch.float64)
        rows = [slice(0, 2), slice(2, 5)][rank]  # unequal halves: counts must be summed, not assumed
        bn = nn.SyncBatchNorm(3, momentum=0.3).double()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
            bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
        xr = x[rows].clone().requires_grad_()
        out = bn(xr)
        ((out - target[rows]) ** 3).sum().backward()
        torch.save(dict(out=out.detach(), grad=xr.grad, weight_grad=bn.weight.grad, bias_grad=bn.bias.grad,
                        running_mean=bn.running_mean, running_var=bn.running_var), f'{out_dir}/{rank}.pt')

    if __name__ == '__main__':
        mp.spawn(rank_main, args=(2, sys.argv[1], sys.argv[2]), nprocs=2)
""")


def test_sync_batch_norm_on_cpu_normalises_over_every_rank(tmp_path):
    """Two gloo ranks holding 2 and 3 images give what BatchNorm gives on all 5 (outputs, input and weight
    gradients, running statistics); without the fix torch refuses CPU tensors in SyncBatchNorm."""
    script = tmp_path / 'sync_bn.py'
    script.write_text(_SYNC_BN_SNIPPET)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / 'init'), str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'{r}.pt') for r in range(2)]

    torch.manual_seed(0)
    x = (torch.randn(5, 3, 4, 2, dtype=torch.float64) * 3 + 1).requires_grad_()
    target = torch.randn(5, 3, 4, 2, dtype=torch.float64)
    weight = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    bias = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    running_mean, running_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    want = torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, True, 0.3, 1e-5)
    ((want - target)**3).sum().backward()

    torch.testing.assert_close(torch.cat([r['out'] for r in ranks]), want.detach())
    torch.testing.assert_close(torch.cat([r['grad'] for r in ranks]), x.grad)
    # each rank holds the gradient of its own loss; DDP sums (then averages) them across ranks
    torch.testing.assert_close(ranks[0]['weight_grad'] + ranks[1]['weight_grad'], weight.grad)
    torch.testing.assert_close(ranks[0]['bias_grad'] + ranks[1]['bias_grad'], bias.grad)
    for r in ranks:
        torch.testing.assert_close(r['running_mean'], running_mean)
        torch.testing.assert_close(r['running_var'], running_var)


def test_setuptools_window_keeps_pkg_resources():
    import setuptools
    major = int(setuptools.__version__.split('.')[0])
    assert 77 <= major < 82, setuptools.__version__
    import pkg_resources  # noqa: F401  (mmengine, mmcv and mim need it)
    mim = shutil.which('mim', path=os.path.dirname(sys.executable))
    if mim is None:
        pytest.skip('openmim not installed in this interpreter')
    out = subprocess.run([mim, '--version'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_apply_is_idempotent():
    first = compat.apply()
    assert compat.apply() == first == ['checkpoint_weights_only', 'cpu_distributed']
