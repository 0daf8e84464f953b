"""Log the loss of the global batch in distributed training.

mmengine logs the losses of rank 0 only, i.e. of 1/N of the global batch. This hook all-reduces the
loss terms of every iteration and logs their mean over ranks as ``train/global_<name>``, the number
that a single process training on the whole global batch would report (for losses that are means
over samples). Without distributed training it logs the local values under the same names, so the
two kinds of runs can be compared key for key.
"""
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size, is_distributed
from mmengine.hooks import Hook

from mmcluster.registry import HOOKS, register_module


@register_module(HOOKS)
class GlobalLossHook(Hook):
    """All-reduce (mean over ranks) the loss terms of each training iteration for logging.

    Args:
        prefix: name prefix of the logged scalars (``train/{prefix}{loss_name}``).
    """
    priority = 'ABOVE_NORMAL'  # before LoggerHook reads the message hub

    def __init__(self, prefix: str = 'global_') -> None:
        self.prefix = prefix

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        names = sorted(k for k in outputs if 'loss' in k)
        if not names:
            return
        values = torch.stack([torch.as_tensor(outputs[k], dtype=torch.float64).detach().cpu()
                              for k in names])
        if is_distributed() and get_world_size() > 1:
            all_reduce(values, op='mean')
        runner.message_hub.update_scalars(
            {f'train/{self.prefix}{k}': float(v) for k, v in zip(names, values)})
