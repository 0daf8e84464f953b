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
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

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


def count_in_subprocess(config, shape: Sequence[int], timeout: float = 1800.0,
                        max_mib: float = 8192.0) -> Dict[str, Any]:
    """``tools/get_flops.py CONFIG --shape H W --json`` in a fresh process (one thread).

    Args:
        config: the config file.
        shape: input (H, W).
        timeout: seconds before the count is stopped.
        max_mib: resident memory (MiB) at which the count is stopped: tracing a model whose operators unroll
            into a long graph (ClusTR's DPC-kNN at 800 x 1333) can take more memory than the machine has, and
            the kernel's out-of-memory killer would pick any process of the run.

    Returns:
        The summary of :func:`summarise` plus ``seconds``, or ``{'error': ..., 'seconds': ...}`` (the exception
        the tool raised, the time-out or the memory limit).
    """
    import os
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'flops.json'
        cmd = [sys.executable, str(GET_FLOPS), str(config), '--shape', *(str(s) for s in shape), '--json', str(out)]
        error, seconds = run_guarded(cmd, timeout=timeout, max_mib=max_mib, env=env, cwd=REPO)
        if error is None and not out.is_file():
            error = 'the tool wrote no result'
        if error is not None:
            return dict(error=error, seconds=seconds)
        return dict(summarise(json.loads(out.read_text())), seconds=seconds)


def _rss_mib(pid: int) -> float:
    """Resident memory of a process (0 where ``/proc`` has none: the guard then only times out)."""
    from .measure import _proc_status
    try:
        return _proc_status('VmRSS', pid)
    except (OSError, KeyError, ValueError, IndexError):
        return 0.0


def last_exception(stderr: str) -> Optional[str]:
    """The last ``SomeError: message`` line of a traceback in ``stderr`` (warnings are ignored), else ``None``."""
    for line in reversed(stderr.strip().splitlines()):
        head = line.split(':', 1)[0].strip()
        if ':' in line and not line.startswith(' ') and head.isidentifier() and head.endswith(
                ('Error', 'Exception', 'Interrupt')):
            return line.strip()
    return None


def run_guarded(cmd: Sequence[str], timeout: float, max_mib: float, poll: float = 0.5,
                **popen_kwargs) -> Tuple[Optional[str], float]:
    """Run ``cmd`` to its end, stopping it at ``timeout`` seconds or ``max_mib`` MiB of resident memory.

    Returns:
        ``(error, seconds)``: ``error`` is ``None`` on exit status 0, else why it failed (the limit it hit, or the
        last exception line of its stderr, or its exit status).
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile('w+') as err:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=err, text=True, **popen_kwargs)
        stopped, peak = None, 0.0
        while proc.poll() is None:
            peak = max(peak, _rss_mib(proc.pid))
            elapsed = time.perf_counter() - start
            if peak > max_mib:
                stopped = f'stopped at {peak:.0f} MiB of memory (limit {max_mib:.0f} MiB) after {elapsed:.0f} s'
            elif elapsed > timeout:
                stopped = f'timed out after {timeout:.0f} s'
            if stopped:
                proc.kill()
                proc.wait()
                break
            time.sleep(poll)
        seconds = time.perf_counter() - start
        if stopped:
            return stopped, seconds
        if proc.returncode == 0:
            return None, seconds
        err.seek(0)
        return last_exception(err.read()) or f'exit status {proc.returncode}', seconds
