"""Validation of what reaches a model: images at a backbone's door, constructor keyword arguments.

Every mmcluster backbone checks its input before the first tensor operation (a forward pre-hook, registered
by :class:`~mmcluster.models.backbones.base.BaseBackbone` and by the backbones that subclass a toolkit's class),
so bad input is named where it enters instead of surfacing as a shape error deep inside a convolution or as
NaN outputs:

* not a tensor, not ``[B, C, H, W]``, ``C != in_channels``, an empty batch or side: the message names the
  expected layout and ``in_channels``;
* an integer tensor (raw pixels that skipped the data preprocessor);
* NaN or Inf pixels (a broken image, or a normalisation by a zero ``std``): clustering on them gives NaN
  everywhere (distances, soft-max memberships), so the model refuses them. The check is one reduction over the
  image, negligible next to any backbone.
"""
import difflib
import inspect
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn as nn


def check_images(x: Any, in_channels: int, owner: str) -> None:
    """Raise if ``x`` is not a finite floating-point ``[B, in_channels, H, W]`` tensor with ``B, H, W >= 1``.

    Args:
        x: the input of ``owner``'s forward.
        in_channels: the channels ``owner`` was built for.
        owner: the module's name for the message (e.g. ``'ContextCluster(arch=tiny)'``).

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong layout, wrong channels, empty, or non-finite values.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{owner} expects an image tensor [B, {in_channels}, H, W], got {type(x).__name__}')
    if x.dim() != 4:
        raise ValueError(f'{owner} expects images [B, {in_channels}, H, W] (4 dimensions), got shape '
                         f'{tuple(x.shape)}')
    if x.shape[1] != in_channels:
        raise ValueError(f'{owner} expects images [B, {in_channels}, H, W] (in_channels={in_channels}), got '
                         f'{x.shape[1]} channels (shape {tuple(x.shape)}); build it with in_channels={x.shape[1]} '
                         'for such images')
    if not x.is_floating_point():
        raise TypeError(f'{owner} expects floating-point images (the data preprocessor\'s normalised output), '
                        f'got dtype {x.dtype}')
    if x.numel() == 0:
        raise ValueError(f'{owner} got an empty input of shape {tuple(x.shape)}: the batch, height and width '
                         'must all be at least 1')
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        first = [int(i) for i in (~finite).nonzero()[0]]
        raise ValueError(f'{owner} got images with {nan} NaN and {inf} Inf values (first at [b, c, y, x] = '
                         f'{first}); images must be finite (check the image file and the normalisation std)')


def check_finite_features(feats: Iterable[torch.Tensor], owner: str) -> None:
    """Raise ``ValueError`` if a feature map handed to ``owner`` (a head behind a toolkit's backbone, which
    checks nothing) holds NaN or Inf: the k-means / clustering steps would spread them into every prediction."""
    for i, f in enumerate(feats):
        if isinstance(f, torch.Tensor) and f.is_floating_point() and not bool(torch.isfinite(f).all()):
            raise ValueError(f'{owner} got non-finite values (NaN or Inf) in input feature map {i} of shape '
                             f'{tuple(f.shape)}: the images or the backbone produced them (images must be finite)')


def module_label(module: nn.Module) -> str:
    """``Class(arch=...)`` / ``Class(depth=...)`` when the module records its variant, else ``Class``."""
    name = type(module).__name__
    for attr in ('arch_name', 'depth'):
        value = getattr(module, attr, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return f'{name}({attr.replace("_name", "")}={value})'
    return name


def _input_check_hook(module: nn.Module, args: tuple) -> None:
    if args:
        check_images(args[0], getattr(module, 'in_channels', 3), module_label(module))


def register_input_check(module: nn.Module) -> None:
    """Check the first positional input of ``module.forward`` with :func:`check_images` (``module.in_channels``,
    read at call time) before the forward runs."""
    module.register_forward_pre_hook(_input_check_hook)


def reject_unknown_kwargs(kwargs: Mapping[str, Any], targets: Iterable[Callable], owner: str,
                          accepted: Iterable[str] = ()) -> None:
    """Raise ``TypeError`` for any key of ``kwargs`` that none of ``targets`` (the ``__init__`` methods the
    keywords are passed on to) names explicitly, with the closest valid names.

    For classes whose base accepts ``**kwargs`` and drops them (mmdet's ``Mask2FormerHead``), where a misspelled
    argument would otherwise be ignored silently. ``accepted``: names the toolkit's own configs pass and its
    class ignores (kept valid so that those configs still build).
    """
    valid = set(accepted)
    for target in targets:
        valid |= {name for name, p in inspect.signature(target).parameters.items()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name != 'self'}
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        hints = {k: difflib.get_close_matches(k, sorted(valid), n=3) for k in unknown}
        hint = '; '.join(f'{k!r}: did you mean {v}?' for k, v in hints.items() if v)
        raise TypeError(f'{owner} got unexpected keyword argument(s) {unknown}' + (f' ({hint})' if hint else '') +
                        f'; valid: {sorted(valid)}')
