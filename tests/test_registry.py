"""One mmcluster module reaches the registries of mmdet, mmseg and mmpretrain."""
import pytest
from mmengine.registry import DefaultScope, Registry

import mmcluster  # noqa: F401
from mmcluster.registry import MODELS, register_module

TOOLKITS = ['mmdet', 'mmseg', 'mmpretrain']
TINY = dict(type='ContextCluster', arch=dict(
    layers=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], mlp_ratios=[2, 2, 2, 2], heads=[1, 1, 2, 2],
    head_dim=4, proposal=[2, 2, 2, 2], fold=[2, 2, 1, 1]))


def _toolkit_models(scope: str) -> Registry:
    pytest.importorskip(f'{scope}.models')
    registry_module = __import__(f'{scope}.registry', fromlist=['MODELS'])
    return registry_module.MODELS


@pytest.mark.parametrize('scope', TOOLKITS)
def test_bare_type_builds_under_each_toolkit_scope(scope):
    toolkit_models = _toolkit_models(scope)
    with DefaultScope.overwrite_default_scope(scope):
        backbone = toolkit_models.build(dict(TINY))
    assert type(backbone).__name__ == 'ContextCluster'
    assert type(backbone).__module__.startswith('mmcluster.')


@pytest.mark.parametrize('scope', TOOLKITS)
def test_scoped_type_and_own_modules_win(scope):
    toolkit_models = _toolkit_models(scope)
    with DefaultScope.overwrite_default_scope(scope):
        scoped = toolkit_models.build(dict(TINY, type='mmcluster.ContextCluster'))
        # The toolkit's own ResNet, not another registration of that name.
        resnet_cls = toolkit_models.get('ResNet')
    assert type(scoped).__name__ == 'ContextCluster'
    assert resnet_cls.__module__.startswith(scope)


def test_backbone_inside_a_toolkit_model_config():
    """The real use: a bare type inside an mmpretrain ImageClassifier built by mmpretrain."""
    toolkit_models = _toolkit_models('mmpretrain')
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(TINY),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=32))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = toolkit_models.build(cfg)
    assert type(model.backbone).__name__ == 'ContextCluster'


def test_register_module_rejects_foreign_registries_and_duplicates():
    from mmengine.registry import MODELS as ROOT
    with pytest.raises(ValueError, match='mmcluster registry'):
        register_module(ROOT)

    class Probe:
        pass

    register_module(MODELS, name='_MMClusterRegistryProbe')(Probe)
    assert MODELS.get('_MMClusterRegistryProbe') is Probe
    assert ROOT.get('_MMClusterRegistryProbe') is Probe
    with pytest.raises(KeyError, match='already registered'):
        register_module(MODELS, name='_MMClusterRegistryProbe')(Probe)


def test_every_registry_location_imports_and_hooks_build():
    """The locations the registries name exist (an mmcluster-scoped build imports them), and mmcluster's
    hooks build under the mmcluster scope and, by bare name, under a toolkit's."""
    from mmengine.registry import HOOKS as ROOT_HOOKS

    from mmcluster import registry
    for reg in (registry.MODELS, registry.DATASETS, registry.TRANSFORMS, registry.METRICS, registry.HOOKS,
                registry.OPTIM_WRAPPER_CONSTRUCTORS):
        reg.import_from_location()
    with DefaultScope.overwrite_default_scope('mmcluster'):
        assert type(registry.HOOKS.build(dict(type='TimeBudgetHook', minutes=1))).__name__ == 'TimeBudgetHook'
    with DefaultScope.overwrite_default_scope('mmengine'):
        assert type(ROOT_HOOKS.build(dict(type='GlobalLossHook'))).__name__ == 'GlobalLossHook'
