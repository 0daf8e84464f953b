"""Registries of mmcluster and how one module reaches mmdet, mmseg and mmpretrain.

mmengine registries form a tree: ``mmengine.registry.MODELS`` is the root and each toolkit's ``MODELS``
(scope ``mmdet``, ``mmseg``, ``mmpretrain``) is a child of it. A lookup of a bare ``type='X'`` in a child
searches the child first and then walks up to the root; a scoped ``type='mmcluster.X'`` is resolved from
the root down to the child whose scope is ``mmcluster``.

mmcluster therefore registers every module twice, through :func:`register_module`:

* in mmcluster's own child registries (scope ``mmcluster``), so that ``mmcluster.X`` always resolves,
  also under another default scope, and ``init_default_scope('mmcluster')`` works; and
* in the mmengine root registry, so that a bare ``type='X'`` resolves under the ``mmdet``, ``mmseg`` and
  ``mmpretrain`` default scopes after ``custom_imports=dict(imports=['mmcluster'])``.

A toolkit's own module of the same name always wins under its own scope (the child is searched before
the root), so mmcluster can never shadow an mmdet / mmseg / mmpretrain class. Registering a name that the
root already holds raises, so two plugins cannot silently replace each other either.
"""
from typing import Callable, Optional, Type

from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import METRICS as ROOT_METRICS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=ROOT_MODELS, scope='mmcluster', locations=['mmcluster.models'])
DATASETS = Registry('dataset', parent=ROOT_DATASETS, scope='mmcluster', locations=['mmcluster.datasets'])
TRANSFORMS = Registry(
    'transform', parent=ROOT_TRANSFORMS, scope='mmcluster', locations=['mmcluster.datasets'])
# no metric of mmcluster's own yet (the toolkits' evaluators serve); one would live in mmcluster/evaluation/
METRICS = Registry('metric', parent=ROOT_METRICS, scope='mmcluster')
HOOKS = Registry('hook', parent=ROOT_HOOKS, scope='mmcluster', locations=['mmcluster.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor', parent=ROOT_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='mmcluster', locations=['mmcluster.engine'])


def register_module(registry: Registry, name: Optional[str] = None) -> Callable[[Type], Type]:
    """Class decorator: register in ``registry`` (scope ``mmcluster``) and in its root registry.

    Args:
        registry: one of this module's registries (e.g. :data:`MODELS`).
        name: registered name; defaults to the class name.
    """
    if registry.scope != 'mmcluster' or registry.parent is None:
        raise ValueError(f'register_module expects an mmcluster registry, got scope {registry.scope!r}')

    def decorator(cls: Type) -> Type:
        registry.register_module(name=name, module=cls)
        registry.parent.register_module(name=name, module=cls)
        return cls

    return decorator
