"""Any input (issue 13, item 1): odd and extreme sizes, batch 1, and a property-based sweep over sizes and aspect
ratios, for every registered backbone (``tests/registry_cases.py``) and, through the toy configs, every neck
and head (the whole model: data preprocessor, backbone, neck, head; ``mode='loss'`` with a training step, and
``mode='predict'``).

What is asserted: a correct result -- every output finite, every backbone map of size ``ceil(H / stride)``
(the stride read from a 64 x 64 input), every predicted map or mask of the input size, finite losses and
gradients -- or a clear error that names the problem (none of the sizes below needs one: every model pads to
its strides and handles a side of 1).

Sizes: 33x47 (odd), 17x301 and 301x17 (very wide / tall), 4x203 (one row after the stride-4 stem: 1 x N at
every stage), 1x1; batch 1 everywhere. The hypothesis sweeps draw a height and an aspect ratio
(derandomized, few examples, no deadline: reproducible and cheap). The larger sizes and more examples run with
``-m slow``.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry_cases import (cached_backbone, check_predictions, load_config, one_thread,  # noqa: F401
                            predict, smallest_cases, tensors, toy_batch, toy_config_scope, toy_configs, toy_model,
                            train_step)

SMALLEST = list(smallest_cases())
TOY_CONFIGS = toy_configs()
BACKBONE_SIZES = [(33, 47), (17, 301), (301, 17), (4, 203), (1, 1)]
TOY_SIZES = [(33, 47)]
TOY_SIZES_SLOW = [(17, 301), (301, 17), (4, 203), (1, 1)]
HYPOTHESIS = dict(derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ASPECTS = st.sampled_from([1 / 8, 1 / 3, 1 / 2, 1, 2, 3, 8])


def sizes(max_height: int):
    """A height in ``[1, max_height]`` and an aspect ratio -> ``(H, W)`` with ``W >= 1``."""
    return st.tuples(st.integers(1, max_height), ASPECTS).map(lambda t: (t[0], max(1, round(t[0] * t[1]))))


def config_id(path) -> str:
    return f'{path.parent.name}/{path.stem}'


_STRIDES = {}


def backbone(cls, variant):
    """The shared backbone (``registry_cases.cached_backbone``) and the stride of each output, read from a
    64 x 64 input (64 = 2 x the largest stride of every backbone)."""
    model = cached_backbone(cls, variant)
    if (cls, variant) not in _STRIDES:
        with torch.no_grad():
            outs = list(tensors(model(torch.zeros(1, 3, 64, 64))))
        _STRIDES[cls, variant] = [64 // o.shape[-1] for o in outs]
    return model, _STRIDES[cls, variant]


def check_backbone(cls, variant, size, train: bool = False) -> str:
    """Forward at ``size`` (and backward when ``train``); finite outputs of ``ceil(size / stride)`` and of the
    declared ``out_channels``."""
    model, strides = backbone(cls, variant)
    model.train(train)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.set_grad_enabled(train):
        outs = list(tensors(model(x)))
    assert len(outs) == len(strides) == len(model.out_channels)
    for i, (o, s, c) in enumerate(zip(outs, strides, model.out_channels)):
        want = (1, c, math.ceil(size[0] / s), math.ceil(size[1] / s))
        assert tuple(o.shape) == want, f'output {i}: shape {tuple(o.shape)}, expected {want} (stride {s})'
        assert torch.isfinite(o).all(), f'output {i}: non-finite values'
    if train:
        sum((o * torch.randn_like(o)).sum() for o in outs).backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        model.zero_grad(set_to_none=True)
        assert not bad, f'non-finite gradients: {bad[:5]}'
    return f'ok ({len(outs)} maps)'


@pytest.mark.parametrize('size', BACKBONE_SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_backbone_any_size(cls, variant, size, reliability_table):
    """Eval-mode forward at odd / extreme sizes, batch 1 (training mode with a backward at 17x301)."""
    check_backbone(cls, variant, size, train=size == (17, 301))
    reliability_table.add('Inputs', f'{cls.__name__}({variant})', f'{size[0]}x{size[1]}', 'ok')


@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_backbone_hypothesis_sizes(cls, variant, reliability_table):
    """Property: any height in [1, 48] and aspect ratio in [1/8, 8] gives finite maps of ceil(size / stride)."""
    tried = []

    @settings(max_examples=6, **HYPOTHESIS)
    @given(size=sizes(48))
    def prop(size):
        tried.append(size)
        check_backbone(cls, variant, size)

    prop()
    reliability_table.add('Inputs', f'{cls.__name__}({variant})', 'hypothesis (6 sizes)', 'ok',
                          ', '.join(f'{h}x{w}' for h, w in tried))


def check_toy_model(path, size, train: bool = True) -> str:
    """A training step (batch 1: loss, backward, SGD) and a prediction at ``size`` through the whole model."""
    scope = toy_config_scope(path)
    result = ''
    if train:
        step = train_step(toy_model(path, train=True), toy_batch(path, size))
        bad_losses = {k: v for k, v in step['losses'].items() if not math.isfinite(v)}
        assert not bad_losses, f'non-finite losses {bad_losses}'
        assert not step['bad_grads'], f'non-finite gradients {step["bad_grads"][:5]}'
        result = f'loss {step["loss"]:.3g}; '
    samples = predict(toy_model(path, train=False), toy_batch(path, size))
    return result + check_predictions(samples, size) + f' ({scope})'


#: BatchNorm in training needs more than one value per channel: a batch of one whose map is pooled (UperNet's
#: pyramid pooling, mmseg's UPerHead) or shrunk (a toolkit ResNet at a 1 x 1 image padded to 32) to 1 x 1 is
#: refused by PyTorch with this message. The toy configs train with batches of 2-8, as the toolkits' do.
BATCHNORM_ONE_VALUE = 'Expected more than 1 value per channel when training'


def fixed_pad_size(path):
    """The ``BatchFixedSizePad`` size of a config's data preprocessor (Mask2Former-style training), if any:
    larger training images are invalid there (the config's pipeline crops to it first)."""
    for aug in (load_config(path).model.get('data_preprocessor') or {}).get('batch_augments') or []:
        if aug.get('type', '').endswith('BatchFixedSizePad'):
            return tuple(aug['size'])
    return None


def run_toy_case(path, size, reliability_table, train=True):
    name = f'{size[0]}x{size[1]}' + (' train+predict' if train else ' predict')
    pad = fixed_pad_size(path)
    if train and pad and (size[0] > pad[0] or size[1] > pad[1]):
        train, name = False, f'{size[0]}x{size[1]} predict (train: crop to {pad[0]}x{pad[1]} first)'
    try:
        text = check_toy_model(path, size, train)
    except ValueError as err:
        if BATCHNORM_ONE_VALUE not in str(err):
            raise
        reliability_table.add('Inputs', config_id(path), name + ' (batch 1)', 'error', f'{err} (BatchNorm, training)')
        check_toy_model(path, size, train=False)  # the predict path still works
        return
    reliability_table.add('Inputs', config_id(path), name + ' (batch 1)', 'ok', text)


@pytest.mark.parametrize('size', TOY_SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('path', TOY_CONFIGS)
def test_toy_config_any_size(path, size, reliability_table):
    run_toy_case(path, size, reliability_table)


@pytest.mark.slow
@pytest.mark.parametrize('size', TOY_SIZES_SLOW, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('path', TOY_CONFIGS)
def test_toy_config_extreme_sizes(path, size, reliability_table):
    run_toy_case(path, size, reliability_table)


@pytest.mark.parametrize('path', TOY_CONFIGS)
def test_toy_config_hypothesis_sizes(path, reliability_table):
    """Property over the necks and heads (predict path, batch 1): any size gives finite predictions of the
    input size."""
    tried = []

    @settings(max_examples=3, **HYPOTHESIS)
    @given(size=sizes(64))
    def prop(size):
        tried.append(size)
        check_toy_model(path, size, train=False)

    prop()
    reliability_table.add('Inputs', config_id(path), 'hypothesis (3 sizes, predict)', 'ok',
                          ', '.join(f'{h}x{w}' for h, w in tried))
