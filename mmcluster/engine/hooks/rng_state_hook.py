"""Save torch's random-number state in checkpoints and restore it on resume, so that resuming is exact.

mmengine's checkpoints hold the weights, the optimizer and the schedulers, and on resume the Runner re-seeds and
replays the data loader up to the saved iteration (so NumPy / Python ``random``, which the data pipelines use,
are back where they were when the loader runs in the main process). torch's generator is not restored: it was
advanced by every training step before the checkpoint, and a resumed run draws different numbers wherever a
model samples during training (Mask2Former-style point sampling of the mask losses, kMaX-DeepLab's pixel
sampling, stochastic depth, dropout), so its losses after resuming differ from those of the uninterrupted run.
This hook writes ``torch.get_rng_state()`` (and the CUDA generators' states when CUDA is used) into
``checkpoint['meta']`` and sets them back just before the first training iteration after resuming, which is
where the uninterrupted run continues from.

With data-loader worker processes, the workers' own generators are re-seeded by the loader and are not part of
this (as in mmengine); resuming is then exact only for models that draw no random numbers in their pipeline
workers.
"""
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmcluster.registry import HOOKS, register_module

META_KEY = 'torch_rng_state'


@register_module(HOOKS)
class RNGStateHook(Hook):
    """Checkpoint torch's RNG state and restore it on resume (see the module docstring)."""
    priority = 'VERY_LOW'  # save the state after every other hook of the iteration has run

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(cpu=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault('meta', {})[META_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
        if getattr(runner, '_resume', False) and isinstance(meta, dict) and META_KEY in meta:
            self._pending = meta[META_KEY]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state['cpu'].cpu())
        if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
