"""mmcluster: clustering-view vision models registered for mmdet, mmseg and mmpretrain.

``import mmcluster`` (or ``custom_imports=dict(imports=['mmcluster'])`` in a config) applies the
compatibility fixes of :mod:`mmcluster.compat` and registers every module (see
:mod:`mmcluster.registry`).
"""
from . import compat
from .version import __version__

compat.apply()

from . import datasets, engine, models  # noqa: E402,F401  (registration side effects)

__all__ = ['__version__', 'compat']
