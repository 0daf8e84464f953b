"""Degenerate ground truth (issue 13, item 2), for every toy config of the mmdet and mmseg kind (found in
``configs/``, ``tests/registry_cases.py``): a training step (data preprocessor, ``mode='loss'``, backward, SGD
update) completes with finite losses and finite gradients when the image has

* ``empty``: no object at all (mmdet: no instance; mmseg: an all-ignore label map; panoptic: all VOID);
* ``few-pixels``: one 3 x 2 pixel object;
* ``one-pixel``: one 1 x 1 pixel object;
* ``crowd-only`` (mmdet): one object with ``iscrowd=1``, which mmdet's datasets turn into an ignore flag and
  ``PackDetInputs`` into ``ignored_instances`` (no instance to learn from).

The samples are packed by the toolkits' own transforms from what their loading transforms produce
(``registry_cases.toy_batch``) at 64 x 80 (odd aspect; the mmseg configs pad to their 256 x 256 crop as in
training). Batch 2, as the toy configs train (UperNet's BatchNorm pooling needs it): the degenerate image and an
ordinary one in the first case, two degenerate images in the second.
"""
import math

import pytest

from registry_cases import one_thread, toy_batch, toy_config_scope, toy_configs, toy_model, train_step  # noqa: F401

SIZE = (64, 80)
DENSE_CONFIGS = [p for p in toy_configs() if toy_config_scope(p.values[0]) in ('mmdet', 'mmseg')]
CASES = ['empty', 'few-pixels', 'one-pixel', 'crowd-only']


def batch_of(path, gt: str, with_ordinary: bool):
    """Two images: ``gt`` and an ordinary annotated one, or ``gt`` twice."""
    first = toy_batch(path, SIZE, gt, seed=0)
    second = toy_batch(path, SIZE, 'objects' if with_ordinary else gt, seed=1)
    return {k: first[k] + second[k] for k in first}


# two degenerate images (the harder case) in the default run; the few-pixel object and the degenerate image next
# to an ordinary one with -m slow
VARIANTS = [pytest.param('empty', False, id='empty'), pytest.param('one-pixel', False, id='one-pixel'),
            pytest.param('crowd-only', False, id='crowd-only'),
            pytest.param('few-pixels', False, id='few-pixels', marks=pytest.mark.slow),
            pytest.param('empty', True, id='empty+ordinary', marks=pytest.mark.slow),
            pytest.param('crowd-only', True, id='crowd-only+ordinary', marks=pytest.mark.slow)]


@pytest.mark.parametrize('gt,mixed', VARIANTS)
@pytest.mark.parametrize('path', DENSE_CONFIGS)
def test_degenerate_ground_truth_trains(path, gt, mixed, reliability_table):
    name = f'{path.parent.name}/{path.stem}'
    if gt == 'crowd-only' and toy_config_scope(path) != 'mmdet':
        pytest.skip('crowd annotations exist only for mmdet (COCO iscrowd)')
    step = train_step(toy_model(path, train=True), batch_of(path, gt, mixed))
    bad = {k: v for k, v in step['losses'].items() if not math.isfinite(v)}
    assert not bad, f'non-finite losses {bad}'
    assert not step['bad_grads'], f'non-finite gradients: {step["bad_grads"][:5]}'
    case = gt + (' + ordinary image' if mixed else ' (x2)')
    reliability_table.add('Degenerate ground truth', name, case, 'ok',
                          f'loss {step["loss"]:.3g}, {len(step["no_grads"])} parameters without gradient')
