"""Endurance (issue 13 item 7): ``tools/benchmark/endurance.py`` runs and reports what it promises.

The default test runs the script's training loop in this process (Context Clusters, a few iterations at a new
input size each: the size-keyed region layout cache is exercised) and checks its record: one RSS reading and one
finite loss per iteration, one distinct size per iteration; and the table's columns from a known record. Nothing
is asserted on time or on memory: those are the printed numbers of the full run (``python
tools/benchmark/endurance.py``, 300 iterations per model). The slow test runs the script itself (a subprocess
per model) for every model, 60 iterations.
"""
import json
import math
import subprocess
import sys

import pytest
from conftest import REPO, load_tool

pytest.importorskip('mmpretrain.models')

SCRIPT = REPO / 'tools' / 'benchmark' / 'endurance.py'


def _run(tmp_path, models, iters):
    out = subprocess.run([sys.executable, str(SCRIPT), '--models', *models, '--iters', str(iters), '--json',
                          str(tmp_path / 'records.json')], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    return out.stdout, json.loads((tmp_path / 'records.json').read_text())


def _check(stdout, records, models, iters):
    assert 'growth' in stdout and 'slope' in stdout
    for record, name in zip(records, models):
        assert 'error' not in record, record
        assert record['model'] == name and record['iters'] == iters
        assert len(record['rss']) == len(record['losses']) == iters
        assert all(math.isfinite(v) and v > 0 for v in record['rss'])
        assert all(math.isfinite(v) for v in record['losses'])
        assert record['sizes'] >= iters - 1  # a new size (almost) every iteration
        row = next(line for line in stdout.splitlines() if line.split()[:1] == [name])
        assert row.split()[8] == 'True', row  # the finite column


def test_endurance_run_records_every_iteration():
    """The script's training loop (``run_model``, what each of its subprocesses runs), in this process."""
    tool = load_tool('tools/benchmark/endurance.py')
    iters = 3
    record = tool.run_model('coc', iters, warmup=1, trim=True)
    assert len(record['rss']) == len(record['losses']) == iters
    assert all(math.isfinite(v) and v > 0 for v in record['rss'])
    assert all(math.isfinite(v) for v in record['losses'])
    assert record['sizes'] >= iters - 1  # a new size (almost) every iteration
    summary = tool.summarise(record)
    assert summary['finite'] and summary['iters'] == iters


@pytest.mark.parametrize('sizes, expected', [('fixed', 1), ('cycle', 4)])
def test_size_modes(sizes, expected, monkeypatch):
    """``--sizes fixed`` trains at one size, ``cycle`` repeats a few: what tells memory kept per input size from
    memory kept per iteration."""
    tool = load_tool('tools/benchmark/endurance.py')
    monkeypatch.setattr(tool, 'CYCLE', 4)
    record = tool.run_model('coc', 6 if sizes == 'cycle' else 2, warmup=1, sizes=sizes)
    assert record['sizes'] == expected and record['size_mode'] == sizes
    with pytest.raises(ValueError, match='random'):
        tool.run_model('coc', 2, warmup=1, sizes='bogus')


def test_summary_columns():
    """The table's numbers from a known record (growth, slope of a linear RSS, loss means, finiteness)."""
    tool = load_tool('tools/benchmark/endurance.py')
    record = dict(model='m', iters=30, warmup=10, sizes=30, rss=[100.0 + 0.5 * i for i in range(30)],
                  losses=[2.0] * 10 + [1.0] * 10 + [0.5] * 10)
    s = tool.summarise(record)
    assert s['rss_warm'] == 105.0 and s['rss_end'] == 114.5 and s['growth'] == pytest.approx(9.5)
    assert s['slope'] == pytest.approx(50.0)  # 0.5 MiB per iteration
    assert s['loss_first'] == 2.0 and s['loss_last'] == 0.5 and s['finite'] and s['rss_max'] == 114.5
    assert not tool.summarise(dict(record, losses=[1.0] * 29 + [float('nan')]))['finite']


@pytest.mark.slow
def test_endurance_every_model(tmp_path):
    tool = load_tool('tools/benchmark/endurance.py')
    models = list(tool.MODELS)
    stdout, records = _run(tmp_path, models, 60)
    _check(stdout, records, models, 60)
    print(stdout)
