from .checkpoint_check_hook import CheckpointCheckHook, add_checkpoint_hooks
from .global_loss_hook import GlobalLossHook
from .rng_state_hook import RNGStateHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['add_checkpoint_hooks', 'CheckpointCheckHook', 'GlobalLossHook', 'RNGStateHook', 'TimeBudgetHook']
