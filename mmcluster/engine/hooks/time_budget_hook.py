"""Stop an iteration-based training run after a wall-clock budget, with a progress bar.

For CPU experiments and ``make demo``: "train for N minutes" instead of "train for N iterations".
The run ends cleanly through the loop's own condition (its ``max_iters`` is lowered to the current
iteration), so the usual end-of-training checkpoint and validation still happen.
"""
import sys
import time
from typing import Optional

from mmengine.dist import broadcast, get_rank, is_distributed
from mmengine.hooks import Hook

from mmcluster.registry import HOOKS, register_module


@register_module(HOOKS)
class TimeBudgetHook(Hook):
    """End training after ``minutes`` of wall-clock time and draw a progress bar meanwhile.

    Args:
        minutes: training budget; the iteration that crosses it is the last one.
        progress: draw a one-line progress bar on rank 0's stderr (time, iterations, loss).
        bar_width: characters of the bar.
    """
    priority = 'LOW'

    def __init__(self, minutes: float, progress: bool = True, bar_width: int = 30) -> None:
        if minutes <= 0:
            raise ValueError(f'minutes must be positive, got {minutes}')
        self.budget_s = 60.0 * minutes
        self.progress = progress
        self.bar_width = bar_width
        self._start: Optional[float] = None

    def before_train(self, runner) -> None:
        if not hasattr(runner.train_loop, '_max_iters'):
            raise TypeError('TimeBudgetHook needs an iteration-based train loop '
                            f'(got {type(runner.train_loop).__name__})')
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        elapsed = time.perf_counter() - self._start
        done = elapsed >= self.budget_s
        if is_distributed():  # every rank must stop at the same iteration
            import torch
            flag = torch.tensor([int(done)])
            broadcast(flag, src=0)
            done = bool(flag.item())
        if self.progress and get_rank() == 0:
            self._draw(runner, elapsed, outputs or {})
        if done:
            runner.train_loop._max_iters = runner.iter + 1
            if self.progress and get_rank() == 0:
                print(f'\n[time budget] {elapsed / 60:.1f} min used: stopping after '
                      f'{runner.iter + 1} iterations', file=sys.stderr, flush=True)

    def _draw(self, runner, elapsed: float, outputs: dict) -> None:
        fraction = min(1.0, elapsed / self.budget_s)
        filled = int(round(fraction * self.bar_width))
        bar = '#' * filled + '-' * (self.bar_width - filled)
        loss = outputs.get('loss')
        loss_txt = f' loss {float(loss):.4f}' if loss is not None else ''
        print(f'\r[{bar}] {elapsed / 60:4.1f}/{self.budget_s / 60:.1f} min  iter {runner.iter + 1}'
              f'{loss_txt}   ', end='', file=sys.stderr, flush=True)
