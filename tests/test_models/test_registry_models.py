"""Every backbone in mmcluster's MODELS registry, every variant of its table (in the manner of timm's
test_models.py): forward at an odd size with batch 1, backward, and every trainable parameter gets a finite
gradient; the outputs are finite.

Backbones are found by walking the registry (classes defined under ``mmcluster.models.backbones``) and their
variants by reading the class's own table (``arch_settings`` / ``arch_zoo`` on the class, else the
``ARCH_SETTINGS`` of its module; the shared discovery in ``tests/registry_cases.py``), so a new backbone or
variant is tested without touching this file. The variant is passed as ``arch`` (or ``depth``, mmdet ResNet
style) as the table's signature says; a backbone without a table is tested with its defaults. An unknown variant must raise ``ValueError`` naming the valid
ones.

Cost: ``pytest tests/test_models/test_registry_models.py --durations=0`` lists the time of every variant.
"""
import pytest
import torch

from registry_cases import (backbones, cases, one_thread, tensors, variant_argument,  # noqa: F401 (fixture)
                            variant_table)

SIZE = (67, 93)  # odd, not a multiple of any stride


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

