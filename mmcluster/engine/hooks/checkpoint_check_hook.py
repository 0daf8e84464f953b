"""Refuse to resume from a checkpoint that does not match the model, and to ``load_from`` one that matches nothing.

mmengine's ``Runner.load_checkpoint`` loads every checkpoint non-strictly (``strict=False``), also when it
resumes: a checkpoint of another model then only logs a warning, and training continues from partly random
weights with the optimizer state of another model. That is right for ``load_from`` (fine-tuning a detector
trained on another data set: the class heads differ, and mmengine's warning names every differing key), and
wrong for ``resume``, which continues *the same* run. This hook, called by the Runner after it read a checkpoint
and before it loads it (``after_load_checkpoint``), compares the checkpoint's state dict with the model
(:func:`mmcluster.utils.checkpoint.check_state_dict`, after mmengine's own ``module.`` key revision) and

* on resume: raises unless the match is exact, naming the missing, unexpected and shape-mismatched keys;
* on ``load_from``: raises when no parameter of the model would be loaded (a checkpoint of another model, or a
  key-prefix mistake such as a backbone-only file given to a whole detector); a partial match is loaded as
  mmengine does (what matches), and the full key report goes to the run's log (mmengine prints its notice to
  stdout only).

``tools/train.py`` and ``tools/test.py`` add it to every run; with ``mim train`` add
``custom_hooks = [dict(type='CheckpointCheckHook')]`` to the config.
"""
import re
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmcluster.registry import HOOKS, register_module
from mmcluster.utils.checkpoint import check_state_dict


def _key_prefixes(keys, n: int = 5):
    """The distinct first components of ``keys`` (what a prefix mistake shows)."""
    seen = []
    for key in keys:
        head = key.split('.', 1)[0] + '.'
        if head not in seen:
            seen.append(head)
    return seen[:n]


@register_module(HOOKS)
class CheckpointCheckHook(Hook):
    """Strict resume, and no ``load_from`` that loads nothing (see the module docstring).

    Args:
        strict_resume: raise when a resumed checkpoint does not match the model exactly.
        refuse_empty_load: raise when ``load_from`` would load no parameter of the model.
    """
    priority = 'VERY_HIGH'

    def __init__(self, strict_resume: bool = True, refuse_empty_load: bool = True) -> None:
        self.strict_resume = strict_resume
        self.refuse_empty_load = refuse_empty_load

    @staticmethod
    def _source(runner) -> str:
        if getattr(runner, '_load_from', None):
            return str(runner._load_from)
        from mmengine.runner import find_latest_checkpoint
        return str(find_latest_checkpoint(runner.work_dir) or 'the latest checkpoint of the work dir')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state: Optional[dict] = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            return
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items() if hasattr(v, 'shape')}
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        report = check_state_dict(state, model)
        source = self._source(runner)
        if getattr(runner, '_resume', False):
            if self.strict_resume and not report.exact:
                raise RuntimeError(
                    f'cannot resume from {source}: its weights do not match the model (resume continues the same '
                    f'run; to start a new one from these weights use load_from=... without resume):\n{report}')
            return
        own = model.state_dict()
        loaded = [k for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)]
        if self.refuse_empty_load and own and not loaded:
            raise RuntimeError(
                f'load_from={source}: no parameter of the model matches the checkpoint, nothing would be loaded. '
                f'Checkpoint keys start with {_key_prefixes(state)}, the model\'s with {_key_prefixes(own)} '
                "(a backbone-only file? give it to the backbone, backbone.init_cfg=dict(type='Pretrained', "
                "checkpoint=...), or write it with the converter's --add-prefix).\n" + str(report))
        if not report.exact:  # mmengine prints its own notice to stdout only; keep the full report in the log
            runner.logger.warning(f'load_from={source}: loaded {len(loaded)} of {len(own)} entries of the model '
                                  f'state; the others keep their initialisation:\n{report}')


def add_checkpoint_hooks(cfg, train: bool = True) -> None:
    """Append :class:`CheckpointCheckHook` (and, for training, :class:`~.RNGStateHook`) to ``cfg.custom_hooks``
    unless the config lists them already (what ``tools/train.py`` / ``tools/test.py`` do for every run)."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    present = {str(h.get('type', '')).split('.')[-1] for h in hooks if isinstance(h, dict)}
    for name in ('CheckpointCheckHook', 'RNGStateHook') if train else ('CheckpointCheckHook', ):
        if name not in present:
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks
