"""Bad input gets an error that names the problem and the valid choices (issue 13, item 3), for every registered
backbone (``tests/registry_cases.py``) and every toy config:

* images with NaN or Inf, the wrong number of channels, no batch dimension, integer pixels, an empty batch or
  side: the backbone refuses them before its first operation (``mmcluster/models/utils/input_check.py``), also
  through a whole toy-config model (the data preprocessor lets NaN through);
* an unknown ``arch`` / ``depth``: ``ValueError`` listing every valid variant;
* an unknown or misspelled constructor argument, in every part of every toy config: ``TypeError`` naming it;
* a neck / head built for other channels than the backbone returns: ``ValueError`` while the model is being
  built, naming the backbone's ``out_channels`` and the consumer's ``in_channels``
  (``mmcluster/models/utils/channel_check.py``), never a shape error in the first forward.
"""
import copy
import inspect
import re

import pytest
import torch

from registry_cases import (build, cached_backbone, load_config, one_thread, predict, smallest_cases,  # noqa: F401
                            toy_batch, toy_configs, toy_model, variant_argument, variants)

SMALLEST = list(smallest_cases())
TOY_CONFIGS = toy_configs()


def nan_at(x, value):
    """``x`` with one pixel of one channel set to ``value``."""
    x = x.clone()
    x[0, 0, x.shape[-2] // 2, x.shape[-1] // 3] = value
    return x


GOOD = torch.randn(1, 3, 33, 47, generator=torch.Generator().manual_seed(0))
#: name -> (input, exception type, pattern the message must match)
BAD_IMAGES = {
    'NaN pixel': (nan_at(GOOD, float('nan')), ValueError, r'1 NaN .*must be finite'),
    'Inf pixel': (nan_at(GOOD, float('inf')), ValueError, r'1 Inf .*must be finite'),
    '1 channel': (GOOD[:, :1], ValueError, r'in_channels=3\), got 1 channels'),
    '4 channels': (torch.cat([GOOD, GOOD[:, :1]], 1), ValueError, r'in_channels=3\), got 4 channels'),
    'no batch dim': (GOOD[0], ValueError, r'\[B, 3, H, W\] \(4 dimensions\), got shape \(3, 33, 47\)'),
    'uint8 pixels': ((GOOD * 50 + 128).clamp(0, 255).to(torch.uint8), TypeError, r'floating-point.*uint8'),
    'empty batch': (GOOD[:0], ValueError, r'empty input'),
    'height 0': (GOOD[:, :, :0], ValueError, r'empty input'),
}


@pytest.mark.parametrize('bad', list(BAD_IMAGES))
@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_backbone_refuses_bad_images(cls, variant, bad, reliability_table):
    x, exc, pattern = BAD_IMAGES[bad]
    model = cached_backbone(cls, variant)
    with torch.no_grad(), pytest.raises(exc, match=pattern) as err:
        model(x)
    assert cls.__name__ in str(err.value)  # names the model
    reliability_table.add('Bad input', f'{cls.__name__}({variant})', bad, 'error', str(err.value))


@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_backbone_unknown_variant_lists_the_valid_ones(cls, variant, reliability_table):
    argument = variant_argument(cls)
    if argument is None or variant is None:
        reliability_table.add('Bad input', f'{cls.__name__}({variant})', 'unknown arch', 'ok',
                              'no variant argument (explicit widths and depths)')
        pytest.skip(f'{cls.__name__} has no variant table')
    with pytest.raises(ValueError) as err:
        build(cls, 'no-such-variant' if argument == 'arch' else 19)
    missing = [str(v) for v in variants(cls) if str(v) not in str(err.value)]
    assert not missing, f'valid variants {missing} not named in: {err.value}'
    reliability_table.add('Bad input', f'{cls.__name__}({variant})', f'unknown {argument}', 'error', str(err.value))


def misspelled(cls) -> str:
    """A misspelling of the first keyword argument of the class (``out_indices`` -> ``out_indicse``)."""
    names = [n for k in cls.__mro__ if '__init__' in vars(k)
             for n, p in inspect.signature(k.__init__).parameters.items()
             if n != 'self' and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    name = next(n for n in names if len(n) > 3)
    return name[:-2] + name[-1] + name[-2]


@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_backbone_misspelled_argument_is_named(cls, variant, reliability_table):
    typo = misspelled(cls)
    with pytest.raises(TypeError, match=re.escape(typo)) as err:
        build(cls, variant, **{typo: 1})
    reliability_table.add('Bad input', f'{cls.__name__}({variant})', 'misspelled kwarg', 'error', str(err.value))


# ----------------------------------------------------------------------------------------- whole toy models
def config_id(path) -> str:
    return f'{path.parent.name}/{path.stem}'


@pytest.mark.parametrize('path', TOY_CONFIGS)
def test_toy_model_refuses_nan_image(path, reliability_table):
    """A NaN pixel in the raw image passes the data preprocessor's normalisation and must be refused by the
    model, not turned into NaN predictions."""
    batch = toy_batch(path, (33, 47))
    batch['inputs'][0] = batch['inputs'][0].float()
    batch['inputs'][0][0, 5, 7] = float('nan')
    with pytest.raises(ValueError, match='NaN') as err:
        predict(toy_model(path, train=False), batch)
    reliability_table.add('Bad input', config_id(path), 'NaN pixel (whole model)', 'error', str(err.value))


def parts(path):
    """The constructor configs of the model's parts (backbone, neck, heads) in a toy config."""
    model = load_config(path).model
    return [k for k in ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'panoptic_head', 'bbox_head',
                        'rpn_head', 'head') if isinstance(model.get(k), dict)]


@pytest.mark.parametrize('path', TOY_CONFIGS)
def test_toy_model_parts_name_a_misspelled_argument(path, reliability_table):
    """Every part of the model, built alone with the config's registry: a misspelled ``in_channels``."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = load_config(path)
    init_default_scope(cfg.default_scope)
    for part in parts(path):
        part_cfg = copy.deepcopy(cfg.model[part])
        part_cfg['in_channles'] = 64
        with pytest.raises(TypeError, match='in_channles') as err:
            MODELS.build(part_cfg)
        reliability_table.add('Bad input', config_id(path), f'misspelled kwarg in {part}', 'error', str(err.value))


def first_consumer(path):
    """The part that receives the backbone's features and says which channels it expects: ``(key, overrides)``
    making it expect 8 more channels per input."""
    model = load_config(path).model
    for key in ('neck', 'decode_head', 'panoptic_head', 'bbox_head', 'head'):
        part = model.get(key)
        if not isinstance(part, dict):
            continue
        if 'in_channels' in part:
            c = part['in_channels']
            return key, dict(in_channels=[x + 8 for x in c] if isinstance(c, (list, tuple)) else c + 8)
        if key == 'neck':  # a pooling neck: the head behind it
            continue
    raise AssertionError(f'{config_id(path)}: no part with in_channels')


@pytest.mark.parametrize('path', TOY_CONFIGS)
def test_toy_model_channel_mismatch_named_at_build_time(path, reliability_table):
    from registry_cases import build_toy_model
    key, overrides = first_consumer(path)
    with pytest.raises(ValueError, match=r'out_channels=\[.*in_channels') as err:
        build_toy_model(path, **{key: overrides})
    reliability_table.add('Bad input', config_id(path), 'neck/head channels != backbone', 'error', str(err.value))
