"""Every registered mmcluster backbone and its named variants, found in the registry.

The registry-driven tests (``tests/registry_cases.py``) and the deployment tools (``mmcluster/deployment``)
walk the same list, so a new backbone is tested, compiled and exported without being listed anywhere: a
backbone is a class registered from ``mmcluster.models.backbones``; its variants are the keys of its
``arch_settings`` / ``arch_zoo`` table (or its module's ``ARCH_SETTINGS``), passed as ``arch`` (mmcluster's
convention) or ``depth`` (mmdet's ResNet family).
"""
import inspect
import sys
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from mmcluster.registry import MODELS

__all__ = ['backbone_classes', 'variant_table', 'variant_argument', 'variants', 'build_backbone', 'num_params',
           'smallest_variant']

TABLE_ATTRS = ('arch_settings', 'arch_zoo')
MODULE_TABLES = ('ARCH_SETTINGS', )


def backbone_classes() -> List[type]:
    """Every registered backbone class of mmcluster, sorted by name (``import mmcluster`` registers them)."""
    classes = {cls for cls in MODELS.module_dict.values() if cls.__module__.startswith('mmcluster.models.backbones')}
    return sorted(classes, key=lambda c: c.__name__)


def variant_table(cls: type) -> Optional[Dict[Any, Any]]:
    """The class's table of named variants (class attribute, else its module's ``ARCH_SETTINGS``)."""
    for attr in TABLE_ATTRS:
        table = inspect.getattr_static(cls, attr, None)
        if isinstance(table, dict) and table:
            return table
    module = sys.modules[cls.__module__]
    for attr in MODULE_TABLES:
        table = getattr(module, attr, None)
        if isinstance(table, dict) and table:
            return table
    return None


def variant_argument(cls: type) -> Optional[str]:
    """``arch`` (mmcluster convention) or ``depth`` (mmdet's ResNet family)."""
    params = set()
    for klass in cls.__mro__:  # subclasses that take **kwargs pass them to a parent's signature
        if '__init__' in vars(klass):
            params |= set(inspect.signature(klass.__init__).parameters)
    return next((name for name in ('arch', 'depth') if name in params), None)


def variants(cls: type) -> List[Any]:
    """The variant keys of ``cls`` (``[None]``: build with the defaults)."""
    table = variant_table(cls)
    if table is None or variant_argument(cls) is None:
        return [None]
    return list(table)


def build_backbone(cls: type, variant: Any = None, **kwargs: Any) -> nn.Module:
    """``cls`` built as ``variant`` (passed as ``arch`` or ``depth``), in the mode its constructor leaves."""
    if variant is not None:
        kwargs[variant_argument(cls)] = variant
    return cls(**kwargs)


def num_params(cls: type, variant: Any) -> int:
    """Parameter count of a variant (built on the meta device where its constructor allows, else on the CPU)."""
    try:
        with torch.device('meta'):
            model = build_backbone(cls, variant)
    except (NotImplementedError, RuntimeError):  # a constructor that reads tensor values (``.tolist()``)
        model = build_backbone(cls, variant)
    return sum(p.numel() for p in model.parameters())


def smallest_variant(cls: type) -> Any:
    """The variant with the fewest parameters (``None`` for a backbone without a table)."""
    keys = variants(cls)
    return keys[0] if len(keys) == 1 else min(keys, key=lambda key: num_params(cls, key))
