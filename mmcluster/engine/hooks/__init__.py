from .global_loss_hook import GlobalLossHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['GlobalLossHook', 'TimeBudgetHook']
