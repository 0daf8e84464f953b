"""Discovery of every registered mmcluster backbone and its variants, shared by the registry-driven suites
(``tests/test_models/test_registry_models.py``, ``tests/test_reliability/``).

Backbones are found by walking the registry (classes defined under ``mmcluster.models.backbones``) and their
variants by reading the class's own table (``arch_settings`` / ``arch_zoo`` on the class, else the
``ARCH_SETTINGS`` of its module), so a new backbone or variant is covered without touching any test. The
variant is passed as ``arch`` (or ``depth``, mmdet ResNet style) as the table's signature says; a backbone
without a table is built with its defaults.
"""
import inspect
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import torch

import mmcluster  # noqa: F401  (registration)
from mmcluster.registry import MODELS

TABLE_ATTRS = ('arch_settings', 'arch_zoo')
MODULE_TABLES = ('ARCH_SETTINGS', )


def backbones() -> List[type]:
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


def build(cls: type, variant: Any = None, **kwargs: Any) -> torch.nn.Module:
    if variant is not None:
        kwargs[variant_argument(cls)] = variant
    return cls(**kwargs)


def num_params(cls: type, variant: Any) -> int:
    """Parameter count of a variant (built on the meta device where its constructor allows, else on the CPU)."""
    try:
        with torch.device('meta'):
            model = build(cls, variant)
    except (NotImplementedError, RuntimeError):  # a constructor that reads tensor values (``.tolist()``)
        model = build(cls, variant)
    return sum(p.numel() for p in model.parameters())


def smallest_variant(cls: type) -> Any:
    """The variant with the fewest parameters (``None`` for a backbone without a table)."""
    keys = variants(cls)
    return keys[0] if len(keys) == 1 else min(keys, key=lambda key: num_params(cls, key))


def cases() -> Iterator[Tuple[type, Any]]:
    """``pytest.param(cls, variant)`` for every variant of every backbone."""
    for cls in backbones():
        for key in variants(cls):
            yield pytest.param(cls, key, id=f'{cls.__name__}-{"default" if key is None else key}')


def smallest_cases() -> Iterator[Tuple[type, Any]]:
    """``pytest.param(cls, variant)`` for the smallest variant of every backbone."""
    for cls in backbones():
        key = smallest_variant(cls)
        yield pytest.param(cls, key, id=f'{cls.__name__}-{"default" if key is None else key}')


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread per test (autouse where imported: ``from registry_cases import one_thread``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tensors(out: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a (nested) output."""
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for value in out.values():
            yield from tensors(value)
    elif isinstance(out, (list, tuple)):
        for value in out:
            yield from tensors(value)
