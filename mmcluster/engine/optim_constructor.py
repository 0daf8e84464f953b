"""An optimizer-wrapper constructor whose parameter groups ``torch.compile`` can trace (``docs/deployment.md``).

mmengine's :class:`~mmengine.optim.DefaultOptimWrapperConstructor` with a ``paramwise_cfg`` hands the optimizer
its parameter groups inside a ``ConfigDict``, so every group is a ``ConfigDict``. When a config sets ``compile``,
mmengine's ``Runner`` compiles ``train_step``, optimizer step included, and dynamo (torch 2.14.1) fails on an
Adam-family step over such groups (``InternalTorchDynamoError: AttributeError: 'UserDefinedDictVariable' object
has no attribute 'items'``, in ``torch/optim/adam.py`` ``for group in self.param_groups``) -- for any model, e.g.
the ResNet-18 baseline with the AdamW recipe of the toy classification configs. Plain-dict groups hold the same
values and compile.
"""
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from mmcluster.registry import OPTIM_WRAPPER_CONSTRUCTORS, register_module

__all__ = ['CompilableOptimWrapperConstructor']


@register_module(OPTIM_WRAPPER_CONSTRUCTORS)
class CompilableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`~mmengine.optim.DefaultOptimWrapperConstructor` (same arguments, same groups and values) whose
    optimizer's parameter groups are plain ``dict``s, so that a config's ``compile`` can trace the optimizer step.

    Usage: ``optim_wrapper = dict(constructor='CompilableOptimWrapperConstructor', optimizer=..., paramwise_cfg=...)``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        wrapper = super().__call__(model)
        optimizer = wrapper.optimizer
        optimizer.param_groups = [dict(group) for group in optimizer.param_groups]
        return wrapper
