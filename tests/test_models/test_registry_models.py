"""Every backbone in mmcluster's MODELS registry, every variant of its table (in the manner of timm's
test_models.py): forward at an odd size with batch 1, backward, and every trainable parameter gets a finite
gradient; the outputs are finite.

Backbones are found by walking the registry (classes defined under ``mmcluster.models.backbones``) and their
variants by reading the class's own table (``arch_settings`` / ``arch_zoo`` on the class, else the
``ARCH_SETTINGS`` of its module), so a new backbone or variant is tested without touching this file. The
variant is passed as ``arch`` (or ``depth``, mmdet ResNet style) as the table's signature says; a backbone
without a table is tested with its defaults. An unknown variant must raise ``ValueError`` naming the valid
ones.

Cost: ``pytest tests/test_models/test_registry_models.py --durations=0`` lists the time of every variant.
"""
import inspect
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import torch

import mmcluster  # noqa: F401  (registration)
from mmcluster.registry import MODELS

SIZE = (67, 93)  # odd, not a multiple of any stride
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


def cases() -> Iterator[Tuple[type, Any]]:
    for cls in backbones():
        table = variant_table(cls)
        if table is None or variant_argument(cls) is None:
            yield pytest.param(cls, None, id=f'{cls.__name__}-default')
            continue
        for key in table:
            yield pytest.param(cls, key, id=f'{cls.__name__}-{key}')


def tensors(out: Any) -> Iterator[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for value in out.values():
            yield from tensors(value)
    elif isinstance(out, (list, tuple)):
        for value in out:
            yield from tensors(value)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registry_has_backbones():
    names = [c.__name__ for c in backbones()]
    assert {'ContextCluster', 'ClusTR', 'HCResNet'} <= set(names), names


@pytest.mark.parametrize('cls,variant', list(cases()))
def test_forward_backward_every_variant(cls, variant):
    torch.manual_seed(0)
    kwargs = {} if variant is None else {variant_argument(cls): variant}
    model = cls(**kwargs)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model.train()
    x = torch.randn(1, 3, *SIZE)
    outs = list(tensors(model(x)))
    assert outs, f'{cls.__name__} returned no tensor'
    for i, out in enumerate(outs):
        assert out.shape[0] == 1 and torch.isfinite(out).all(), (i, tuple(out.shape))
    # a random projection of every output: generic (non-symmetric) gradients reach every used parameter
    loss = sum((out * torch.randn_like(out)).sum() for out in outs if out.is_floating_point())
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params, f'{cls.__name__} has no trainable parameter'
    no_grad = [n for n, p in params if p.grad is None]
    assert not no_grad, f'{len(no_grad)} of {len(params)} parameters got no gradient: {no_grad[:10]}'
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    assert not bad, f'non-finite gradients: {bad[:10]}'


@pytest.mark.parametrize('cls', [c for c in backbones() if variant_table(c) and variant_argument(c)],
                         ids=lambda c: c.__name__)
def test_unknown_variant_names_the_valid_ones(cls):
    arg = variant_argument(cls)
    bad = 'no-such-arch' if arg == 'arch' else 7
    with pytest.raises(ValueError) as info:
        cls(**{arg: bad})
    table = variant_table(cls)
    assert all(str(key) in str(info.value) for key in table), str(info.value)

