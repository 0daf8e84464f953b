"""Measuring one op in a fresh Python process (the memory benchmarks of ``tools/benchmark/``).

Each measurement runs in its own subprocess pinned to one thread, so that the process's peak RSS (``VmHWM``)
belongs to that measurement alone. The child's code prints one JSON dict as its last line; it reads its memory
with the ``status(key)`` function of :data:`PROC_STATUS` (paste it into the child's code).
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

#: child-side source of ``status(key)``: a field of ``/proc/self/status`` (``'VmRSS'``, ``'VmHWM'``) in MiB
PROC_STATUS = '''
def status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0  # MiB
'''


def run_child(code: str, **env: str) -> Dict:
    """Run ``code`` with ``python -c`` (one OpenMP / MKL thread, ``env`` added to the environment).

    Returns:
        The JSON dict of the child's last stdout line, or ``dict(error=...)`` with the last line of its stderr.
    """
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **env)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1] if out.stderr else f'rc {out.returncode}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_children(code: str, runs: int, **env: str) -> Tuple[List[Dict], Optional[str]]:
    """:func:`run_child` ``runs`` times; the results and the first error (None if every run succeeded)."""
    results = [run_child(code, **env) for _ in range(runs)]
    errors = [r['error'] for r in results if 'error' in r]
    return results, (errors[0] if errors else None)


def median_row(results: Sequence[Dict], keys: Sequence[str] = ('time', 'peak')) -> Dict[str, float]:
    """Medians over the runs of each of ``keys`` and of ``extra = peak - base`` (the op's own memory)."""
    row = {k: statistics.median(r[k] for r in results) for k in keys}
    row['extra'] = statistics.median(r['peak'] - r['base'] for r in results)
    return row


def write_rows(rows: List[Dict], path: Optional[Path]) -> None:
    """The table as JSON (``--json``), if a path is given."""
    if path:
        path.write_text(json.dumps(rows, indent=1))
