"""What every mmcluster backbone shares: the ``arch`` lookup, ``out_indices``, ``frozen_stages``, ``norm_eval``.

The house conventions (``docs/architecture.md``): ``arch`` is a name from the backbone's variant table or a dict
with its keys (anything else: ``ValueError`` naming the valid choices); ``out_indices`` are stage indices,
negative ones counting from the end; ``frozen_stages=k`` freezes the stem and the stages ``<= k`` (eval mode,
``requires_grad=False``; re-applied by ``train()``); ``norm_eval`` keeps every norm layer in eval mode while
training. :class:`BaseBackbone` implements the last three once; a backbone only says which modules make up
stage ``i`` (:meth:`BaseBackbone.stage_modules`). It also checks every input before the forward runs (a forward
pre-hook, :func:`mmcluster.models.utils.input_check.check_images`: layout, ``in_channels``, dtype, empty, NaN /
Inf) and declares the channels of what the backbone returns (:attr:`BaseBackbone.out_channels`), which the
build-time channel check of the consumer (neck or head) reads (``mmcluster/models/utils/channel_check.py``).
"""
import copy
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch.nn as nn
from mmengine.model import BaseModule

from mmcluster.models.utils.input_check import register_input_check

#: norm layers ``norm_eval`` puts in eval mode (BatchNorm / InstanceNorm / SyncBN, GroupNorm, LayerNorm)
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def resolve_arch(arch: Union[str, dict],
                 arch_zoo: Mapping[str, dict],
                 required_keys: Sequence[str],
                 name: str,
                 aliases: Optional[Mapping[str, str]] = None) -> dict:
    """A copy of the settings of ``arch``: a name of ``arch_zoo`` (or of ``aliases``) or a custom dict.

    Raises:
        ValueError: unknown name, neither str nor dict, or a dict without all ``required_keys``; the message
            names the valid choices.
    """
    aliases = aliases or {}
    choices = (f'valid choices: {sorted(arch_zoo)}' + (f' (aliases {sorted(aliases)})' if aliases else '') +
               f' or a dict with keys {list(required_keys)}')
    if isinstance(arch, str):
        key = aliases.get(arch.lower(), arch.lower())
        if key not in arch_zoo:
            raise ValueError(f'Unknown {name} arch {arch!r}; {choices}')
        return copy.deepcopy(dict(arch_zoo[key]))
    if not isinstance(arch, dict):
        raise ValueError(f'{name} arch must be a str or a dict, got {type(arch).__name__} {arch!r}; {choices}')
    missing = [k for k in required_keys if k not in arch]
    if missing:
        raise ValueError(f'Custom {name} arch is missing keys {missing}; required {list(required_keys)}')
    return copy.deepcopy(dict(arch))


def per_stage(value, name: str, num_stages: int = 4) -> list:
    """One entry per stage: a single number is repeated, a sequence must have ``num_stages`` entries."""
    if isinstance(value, (int, float)):
        return [value] * num_stages
    value = list(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} must be a single value or have {num_stages} entries (one per stage), '
                         f'got {value!r}')
    return value


def freeze_modules(modules: Iterable[nn.Module]) -> None:
    """Eval mode and ``requires_grad=False`` for every parameter of ``modules``."""
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad = False


class BaseBackbone(BaseModule):
    """``out_indices`` / ``frozen_stages`` / ``norm_eval`` handling of the mmcluster backbones.

    Subclasses build their modules, then call :meth:`_freeze_stages`, and implement :meth:`stage_modules`.

    Args:
        num_stages: number of stages.
        out_indices: stages returned (an int or a sequence; ``-num_stages <= i < num_stages``).
        frozen_stages: ``-1`` (nothing) or the last frozen stage (the stem is frozen with stage 0).
        norm_eval: keep the norm layers (:data:`NORM_LAYERS`) in eval mode during training.
        init_cfg: mmengine init config.
    """

    def __init__(self, num_stages: int, out_indices: Union[int, Sequence[int]], frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg: Optional[Union[Dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_stages = num_stages
        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        for i in indices:
            if not -num_stages <= i < num_stages:
                raise ValueError(f'out_indices must be in [{-num_stages}, {num_stages - 1}] (stages), got {i}')
        self.out_indices = tuple(i % num_stages for i in indices)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or \
                not -1 <= frozen_stages < num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {num_stages - 1}] (-1: nothing frozen), '
                             f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        register_input_check(self)  # reads ``self.in_channels`` (set by the subclass) at call time

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned feature map, in order: ``embed_dims[i]`` for ``i`` in ``out_indices``.

        Backbones whose widths are not a per-stage ``embed_dims`` list, or that return more than the stage
        outputs, override it.
        """
        dims = getattr(self, 'embed_dims', None)
        if not isinstance(dims, (list, tuple)) or len(dims) != self.num_stages:
            raise NotImplementedError(f'{type(self).__name__} must define out_channels (no per-stage embed_dims)')
        return [int(dims[i]) for i in self.out_indices]

    def stage_modules(self, i: int) -> Sequence[nn.Module]:
        """The modules of stage ``i`` that ``frozen_stages >= i`` freezes (stage 0 includes the stem)."""
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            freeze_modules(self.stage_modules(i))

    def train(self, mode: bool = True) -> 'BaseBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, NORM_LAYERS):
                    m.eval()
        return self
