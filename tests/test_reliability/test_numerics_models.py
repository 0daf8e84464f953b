"""bf16 autocast on the CPU for every mmcluster toy model, whole (issue 13, item 5): backbone, neck and head
through the toolkit's data preprocessor and loss, found by ``tests/registry_cases.py`` (``test_numerics.py``
covers the backbones alone).

A training step of two generated images under ``torch.autocast('cpu', torch.bfloat16)`` gives finite losses
and finite gradients (correctness only, never a timing: bf16 on these CPUs is ~90x slower than fp32; at this
size the whole set takes about a minute). Two-stage detectors (an RPN) fail inside mmcv 2.1's CPU ``nms``
kernel, which has no bf16 path: a toolkit limitation, kept as a strict expected failure so that a fixed mmcv
shows up.
"""
import math

import pytest
import torch

from registry_cases import load_config, one_thread, toy_batch, toy_configs, toy_model, train_step  # noqa: F401

SIZE = (64, 80)


def _cases():
    for case in toy_configs():
        path, = case.values
        if load_config(path).model.get('rpn_head') is not None:
            case = pytest.param(path, id=case.id, marks=pytest.mark.xfail(
                strict=True, raises=RuntimeError, reason="mmcv 2.1's CPU nms has no bf16 kernel (RPN proposals)"))
        yield case


@pytest.mark.parametrize('path', list(_cases()))
def test_bf16_autocast_training_step_finite(path):
    model = toy_model(path, train=True)
    batch = toy_batch(path, SIZE, 'objects', batch=2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        step = train_step(model, batch)
    bad = {k: v for k, v in step['losses'].items() if not math.isfinite(v)}
    assert not bad, f'non-finite bf16 losses {bad}'
    assert not step['bad_grads'], f'non-finite bf16 gradients: {step["bad_grads"][:5]}'
