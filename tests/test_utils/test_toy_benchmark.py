"""mmcluster.utils.toy_benchmark: which runs a benchmark starts (each baseline once), what it reuses, and the
summary it writes, with the runs replaced by a stand-in that records its calls."""
import json
from pathlib import Path

import pytest

from mmcluster.utils import toy_benchmark
from mmcluster.utils.toy_benchmark import Entry, benchmark_cli
from mmcluster.utils.toy_run import ToyRun


@pytest.fixture
def calls(monkeypatch, tmp_path):
    seen = []

    def fake_run(config, work_dir, minutes, data, **kwargs):
        seen.append((Path(config).name, Path(work_dir), minutes))
        return ToyRun(work_dir=Path(work_dir), metrics={'acc': float(len(seen))}, iters=10 * len(seen), wall_s=60.0)

    monkeypatch.setattr(toy_benchmark, 'run_config', fake_run)
    monkeypatch.setattr(toy_benchmark, 'ensure_toy_data', lambda data: tmp_path / 'data')
    return seen


def test_each_baseline_runs_once(calls, tmp_path, capsys):
    entries = [Entry('a.py', ['acc'], baseline='base.py'), Entry('b.py', ['acc'], baseline='base.py'),
               Entry('c.py', ['acc'])]
    summary = benchmark_cli('x', entries, 'unused', argv=['--minutes', '0.5', '--work-dir', str(tmp_path / 'w')])
    assert [(name, minutes) for name, _, minutes in calls] == [('a.py', 0.5), ('base.py', 0.5), ('b.py', 0.5),
                                                                 ('c.py', 0.5)]
    assert calls[1][1] == tmp_path / 'w' / 'baselines' / 'base'  # baselines in their own folder
    assert summary['runs']['b.py']['metrics'] == {'acc': 3.0} and summary['baselines']['base.py']['iters'] == 20
    assert json.loads((tmp_path / 'w' / 'summary.json').read_text()) == json.loads(json.dumps(summary))
    printed = capsys.readouterr().out
    assert 'baseline base.py' in printed and 'acc 2.000' in printed


def test_reuse_and_only(calls, tmp_path):
    """--baselines reuse reads the earlier baseline run from its work dir instead of training it; --only picks
    entries by file name."""
    earlier = tmp_path / 'earlier' / 'base'
    (earlier / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (earlier / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps({'loss': 1.0, 'lr': 0.1, 'iter': 7}) + '\n' + json.dumps({'acc': 42.0, 'step': 7}) + '\n')
    entries = [Entry('a.py', ['acc'], baseline='base.py'), Entry('b.py', ['acc'])]
    summary = toy_benchmark.benchmark([entries[0]], 1.0, tmp_path / 'w', baselines='reuse',
                                      baseline_runs=tmp_path / 'earlier')
    assert [name for name, _, _ in calls] == ['a.py']
    assert summary['baselines']['base.py']['metrics'] == {'acc': 42.0, 'step': 7}
    assert summary['baselines']['base.py']['iters'] == 7
    benchmark_cli('x', entries, 'unused', argv=['--only', 'b.py', '--baselines', 'none', '--work-dir',
                                                 str(tmp_path / 'w2')])
    assert [name for name, _, _ in calls] == ['a.py', 'b.py']
    with pytest.raises(ValueError, match='reuse'):
        toy_benchmark.benchmark(entries, 1.0, tmp_path / 'w3', baselines='always')
