"""Parameters and FLOPs through ``tools/get_flops.py`` (mmengine's counter plus mmcluster's operator rules).

The counting rules live once, in ``tools/get_flops.py`` (its module docstring gives the convention: one
multiply-add is one FLOP, element-wise operators are not counted, the operators the counter cannot see are
listed). The benchmark loads that file (:func:`get_flops_module`) for in-process counts of the toy models and runs
it as a command (:func:`count_in_subprocess`) for the full-size models, one fresh process per config, so that a
slow or failing trace of a big detector cannot take the whole run down.
"""
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Mapping, Optional, Sequence

from mmcluster.utils.toy_run import REPO

GET_FLOPS = REPO / 'tools' / 'get_flops.py'


@lru_cache(maxsize=1)
def get_flops_module() -> ModuleType:
    """``tools/get_flops.py`` as a module (a source checkout is needed, as for every toy run)."""
    if not GET_FLOPS.is_file():
        raise FileNotFoundError(f'{GET_FLOPS} is missing: the benchmark needs a source checkout (pip install -e .)')
    spec = importlib.util.spec_from_file_location('mmcluster_get_flops', GET_FLOPS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarise(result: Mapping[str, Any]) -> Dict[str, Any]:
    """The JSON-friendly part of a ``get_flops.analyse`` result: params, FLOPs (MACs), shape, uncounted ops."""
    return dict(params=int(result['params']), flops=int(result['flops']), shape=list(result['shape']),
                uncounted=dict(result.get('uncounted', {})), by_operator=dict(result.get('by_operator', {})))


def count(config, shape: Sequence[int], cfg_options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Params and FLOPs of ``config``'s whole model (``mode='tensor'``) at input ``shape`` (H, W), in process.

    ``config``: a path or a loaded ``mmengine.Config`` (e.g. with the protocol's settings applied)."""
    result = get_flops_module().analyse(config, tuple(shape), cfg_options=dict(cfg_options or {}) or None)
    return summarise(result)


def count_in_subprocess(config, shape: Sequence[int], timeout: float = 1800.0) -> Dict[str, Any]:
    """``tools/get_flops.py CONFIG --shape H W --json`` in a fresh process (one thread).

    Returns:
        The summary of :func:`summarise` plus ``seconds``, or ``{'error': ..., 'seconds': ...}`` (the last line
        of the tool's stderr, or the time-out).
    """
    import os
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'flops.json'
        cmd = [sys.executable, str(GET_FLOPS), str(config), '--shape', *(str(s) for s in shape), '--json', str(out)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
        except subprocess.TimeoutExpired:
            return dict(error=f'timed out after {timeout:.0f} s', seconds=timeout)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not out.is_file():
            lines = (proc.stderr or '').strip().splitlines()
            return dict(error=lines[-1] if lines else f'exit code {proc.returncode}', seconds=seconds)
        return dict(summarise(json.loads(out.read_text())), seconds=seconds)
