"""Shared fixtures: the toy datasets (generated once per session) and repository paths.

mmcluster is imported as installed (``pip install -e .``, done by ``make test``); ``tests/`` is put on the
path for the shared helpers (``from e2e import ...``).
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

os.environ.setdefault('OMP_NUM_THREADS', '1')

#: a small toy data set: enough for a few iterations and one evaluation of every toy config
SMALL_TOY_DATA = dict(seed=0, num_train=16, num_val=8, num_cls_per_class=6, num_cls_val_per_class=3)


def load_tool(relpath: str):
    """Import a script under tools/ (not a package) as a module."""
    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope='session')
def toy_data(tmp_path_factory) -> Path:
    """A small toy data root (COCO instances + panoptic, ADE20K layout, ImageNet folders).

    Set ``MMCLUSTER_TOY_DATA`` to reuse (or generate once into) a root, e.g. the demo's ``data/toy``.
    """
    from mmcluster.utils.toy_run import TOY_DATA_ENV, ensure_toy_data
    existing = os.environ.get(TOY_DATA_ENV)
    if existing:
        return ensure_toy_data(existing, verbose=False)
    return ensure_toy_data(tmp_path_factory.mktemp('toy'), verbose=False, **SMALL_TOY_DATA)


@pytest.fixture
def e2e(toy_data, tmp_path):
    """Runs tools/train.py, tools/test.py or mim on a config over the toy data (see tests/e2e.py)."""
    from e2e import EndToEnd
    return EndToEnd(toy_data, tmp_path)
