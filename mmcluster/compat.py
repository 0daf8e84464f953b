"""The one place where mmcluster mends its pinned stack (mmengine 0.10.7, mmcv 2.1.0, torch 2.14).

Each fix is applied once, on ``import mmcluster`` (so ``custom_imports=dict(imports=['mmcluster'])``
in a config is enough, also in the subprocesses of ``mim train`` / ``torchrun``), is idempotent, and
has a test in ``tests/test_compat.py`` that fails without it.

1. **Checkpoints under ``weights_only``.** torch >= 2.6 loads with ``weights_only=True`` by default,
   and mmengine's own checkpoints then fail to reload: the message hub pickles numpy arrays and
   :class:`~mmengine.logging.HistoryBuffer` objects whose ``__getstate__`` adds *bound methods* (pickled
   through ``builtins.getattr``, which no safe unpickler may allow). We keep ``weights_only=True``
   (no arbitrary code runs while loading) and instead (a) allowlist the few plain data types mmengine
   writes (numpy arrays, dtypes and scalars, ``HistoryBuffer``, ``collections.Counter`` of the
   multi-step schedulers) and (b) make ``HistoryBuffer`` pickle its data only: its statistics
   methods are class-level registrations that every import re-creates.
   Files that need anything else (old mmengine checkpoints, timm ``.pth.tar`` with an ``argparse``
   namespace) fail with torch's message naming the type; trust them explicitly with
   ``MMCLUSTER_TRUST_CHECKPOINTS=1`` (full unpickling) or convert them once with our converters.
2. **Distributed training on CPU.** mmengine's ``pytorch`` launcher always calls
   ``torch.cuda.set_device`` and its runner always passes ``device_ids=[LOCAL_RANK]`` to DDP; both
   fail without a GPU, and NCCL does not exist there. Without CUDA we use ``gloo`` and no device ids.
   With CUDA nothing changes (plain NCCL DDP).
   ``SyncBN`` (``nn.SyncBatchNorm``, what the full configs use) refuses CPU tensors once a process group
   exists; on the CPU its statistics are all-reduced over gloo instead (:func:`cpu_sync_batch_norm`, autograd
   through ``torch.distributed.nn``), so a CPU run of several processes normalises over the global batch exactly
   as one process does. On GPUs torch's own kernel runs.
3. **``pkg_resources``** (mmengine, mmcv's setup and mim import it) was removed in setuptools 82;
   torch 2.14 needs setuptools >= 77. ``tools/setup/setup_env.sh`` pins the window ``>=77,<82`` (nothing
   to patch at run time; ``tests/test_compat.py`` checks the window and that ``mim`` runs).
"""
import collections
import functools
import os
from typing import Any, Callable, List

import numpy as np
import torch

TRUST_ENV = 'MMCLUSTER_TRUST_CHECKPOINTS'

_applied: List[str] = []


# --------------------------------------------------------------------------- checkpoints
def checkpoint_safe_globals() -> List[Any]:
    """Plain data types that mmengine writes into checkpoints, allowed under ``weights_only``."""
    from mmengine.logging import HistoryBuffer
    try:  # numpy >= 1.25 moved the reconstructor; pickles name the old path on numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 2
        from numpy._core.multiarray import _reconstruct, scalar
    dtype_classes = [
        type(np.dtype(name)) for name in ('bool', 'uint8', 'int8', 'int16', 'int32', 'int64',
                                          'float16', 'float32', 'float64', 'str', 'bytes')
    ]
    return [
        HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes,
        collections.Counter
    ]


def _history_buffer_getstate(self) -> dict:
    """Data only: statistics methods are re-registered by the class itself on import."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def _patch_checkpoint_loading() -> None:
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
    if os.environ.get(TRUST_ENV, '0') == '1':
        _trust_all_checkpoints()


def _trust_all_checkpoints() -> None:
    """Opt-in full unpickling (``MMCLUSTER_TRUST_CHECKPOINTS=1``): only for files you trust."""
    original = torch.load
    if getattr(original, '_mmcluster_trusting', False):
        return

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs.setdefault('weights_only', False)
        return original(*args, **kwargs)

    load._mmcluster_trusting = True  # type: ignore[attr-defined]
    torch.load = load


# --------------------------------------------------------------------------- distributed on CPU
def _patch_cpu_distributed() -> None:
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel

    original_init_pytorch: Callable = dist_utils._init_dist_pytorch
    if getattr(original_init_pytorch, '_mmcluster_cpu', False):
        return

    @functools.wraps(original_init_pytorch)
    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs) -> None:
        if torch.cuda.is_available() or init_backend != 'torch':
            return original_init_pytorch(backend, init_backend=init_backend, **kwargs)
        # No GPU: no device to select, and NCCL is GPU-only.
        if backend == 'nccl':
            backend = 'gloo'
        torch.distributed.init_process_group(
            backend=backend,
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)

    init_dist_pytorch._mmcluster_cpu = True  # type: ignore[attr-defined]
    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_ddp_init = MMDistributedDataParallel.__init__

    @functools.wraps(original_ddp_init)
    def ddp_init(self, module, detect_anomalous_params: bool = False, **kwargs) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        if on_cpu:
            # DDP rejects device ids for CPU modules.
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        original_ddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = ddp_init

    original_sync_bn_check = MMDistributedDataParallel._passing_sync_batchnorm_handle

    @functools.wraps(original_sync_bn_check)
    def sync_bn_check(self, module) -> None:
        if self.device_type != 'cpu':  # torch's check: SyncBN needs a GPU; on the CPU ours runs instead
            original_sync_bn_check(self, module)

    MMDistributedDataParallel._passing_sync_batchnorm_handle = sync_bn_check
    _patch_cpu_sync_batch_norm()


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with its gradient: every rank's loss depends on every rank's input, so the gradient
    of the sum of the losses reaching this rank is the sum over ranks of the incoming gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        torch.distributed.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        torch.distributed.all_reduce(grad, group=ctx.group)
        return grad, None


def cpu_sync_batch_norm(input: torch.Tensor, bn: torch.nn.SyncBatchNorm, momentum: float,
                        process_group) -> torch.Tensor:
    """Batch normalisation of ``input`` (``[N, C, ...]``) over the batches of every rank of ``process_group``.

    Two all-reduces (sums and counts, then squared deviations from the global mean), each differentiable
    (:class:`_SumOverRanks`), give the
    global batch's mean and biased variance as one process computes them; running statistics are updated with
    the unbiased variance, as ``F.batch_norm`` does.
    """
    reduce_dims = [0] + list(range(2, input.dim()))
    shape = (1, -1) + (1, ) * (input.dim() - 2)
    count = input.new_full((1, ), input.numel() / input.shape[1])
    sums = _SumOverRanks.apply(torch.cat([input.sum(reduce_dims), count]), process_group)
    total = sums[-1]
    mean = sums[:-1] / total
    centred = input - mean.view(shape)
    var = _SumOverRanks.apply((centred * centred).sum(reduce_dims), process_group) / total
    out = centred * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            unbiased = var * (total / (total - 1).clamp(min=1))
            bn.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            bn.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
    return out


def _patch_cpu_sync_batch_norm() -> None:
    original_forward: Callable = torch.nn.SyncBatchNorm.forward
    if getattr(original_forward, '_mmcluster_cpu', False):
        return

    @functools.wraps(original_forward)
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        dist = torch.distributed
        group = self.process_group or (dist.group.WORLD if dist.is_available() else None)
        if not (self.training and input.device.type == 'cpu' and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(group) > 1):
            return original_forward(self, input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as torch's
                momentum = 1.0 / float(self.num_batches_tracked)
        return cpu_sync_batch_norm(input, self, momentum, group)

    forward._mmcluster_cpu = True  # type: ignore[attr-defined]
    torch.nn.SyncBatchNorm.forward = forward


def apply() -> List[str]:
    """Apply every fix once; return the names of those applied (for logs and tests)."""
    if not _applied:
        _patch_checkpoint_loading()
        _applied.append('checkpoint_weights_only')
        _patch_cpu_distributed()
        _applied.append('cpu_distributed')
    return list(_applied)
