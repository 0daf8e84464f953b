"""tools/benchmark.py: the short mode end to end (costs, operator scaling, accuracy, report, plots), the README
regeneration between markers, the published numbers, the skip rule of the operator scaling and the CUDA guard.

The short run is one subprocess of ``tools/benchmark.py run --mode short --tasks classification`` (the baseline
and one clustering model, tiny sizes, two training iterations each): about a minute on two cores.
"""
import json
import re
import subprocess
import sys

import pytest
import torch

from mmcluster.benchmark import report
from mmcluster.benchmark.cli import parse_args, select_runs, short_selection
from mmcluster.benchmark.measure import RATIO_KEYS, add_ratios, check_device
from mmcluster.benchmark.operators import PAIR_NAMES, _predict, measure_operators
from mmcluster.benchmark.protocol import protocol_runs
from mmcluster.benchmark.published import FULL_SIZE, PUBLISHED_YML, load_published, measure_full_size, published_row
from mmcluster.utils.toy_run import REPO


@pytest.fixture(scope='module')
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'short'
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'benchmark.py'), 'run', '--mode', 'short',
                           '--tasks', 'classification', '--out', str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_short_run_writes_every_output(short_run):
    for name in ('results.json', 'costs.csv', 'operators.csv', 'accuracy.csv', 'curves.csv', 'tables.md',
                 'plots/operators.png', 'plots/accuracy_vs_time.png', 'plots/pareto.png'):
        path = short_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in short_run.glob('plots/*.png'):
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_short_run_costs_and_ratios(short_run):
    results = json.loads((short_run / 'results.json').read_text())
    costs = results['costs']
    expected = short_selection([r for r in protocol_runs('short') if r.task == 'classification'])
    assert [r['model'] for r in costs] == [r.model for r in expected]
    base = next(r for r in costs if r['is_baseline'])
    for row in costs:
        assert row['error'] is None, row['error']
        assert row['samples'] == results['meta']['rounds'] * results['meta']['repeats']
        for key in ('latency_ms', 'throughput_ips', 'train_step_ms', 'params', 'flops'):
            assert row[key] > 0, key
        assert row['input_size'] == [32, 32] and row['baseline'] == base['model']
        for key in RATIO_KEYS:
            if row[key] is None or base[key] in (None, 0):
                assert row[f'{key}_ratio'] is None
            else:  # model / baseline of the same run; the baseline's own ratio is 1
                assert row[f'{key}_ratio'] == pytest.approx(row[key] / base[key])
    for key in ('latency_ms', 'train_step_ms', 'params', 'flops'):
        assert base[f'{key}_ratio'] == 1.0


def test_short_run_tables_parse(short_run):
    results = json.loads((short_run / 'results.json').read_text())
    text = (short_run / 'tables.md').read_text()
    cost_rows = report.parse_markdown_table(text.split('## Cost on the toy protocol')[1])
    assert [r['model'].replace('**', '').replace(' (baseline)', '') for r in cost_rows] == \
        [r['model'] for r in results['costs']]
    assert cost_rows[0]['latency (ms)'].endswith('(1.00×)')
    acc_rows = report.parse_markdown_table(text.split('## Accuracy after the same training budget')[1])
    assert len(acc_rows) == len(results['accuracy'])
    for row in results['accuracy']:
        assert row['error'] is None and row['iters'] >= 1
        assert 0.0 <= row['value'] <= 100.0 and row['primary'] == 'accuracy/top1'
        assert row['curve'] and row['curve'][-1]['train_s'] > 0
    op_rows = report.parse_markdown_table(text.split('## Clustering operations')[1])
    assert len(op_rows) == len(results['operators']) == sum(
        len(p.dense) + 1 for p in __import__('mmcluster.benchmark.operators', fromlist=['PAIRS']).PAIRS) * 2
    for row in results['operators']:
        assert row['status'] == 'ok' and row['time_ms'] > 0
        if row['is_clustering']:
            assert row['ratio_time'] == 1.0


def test_report_regenerates_readmes_between_markers_only(short_run, tmp_path):
    (tmp_path / 'configs' / 'clustr').mkdir(parents=True)
    (tmp_path / 'configs' / 'context_cluster').mkdir(parents=True)
    before, after = '# Title\n\nhand-written text\n', '\n## Citation\nkept\n'
    (tmp_path / 'README.md').write_text(f'{before}{report.START}\nold numbers\n{report.END}{after}')
    (tmp_path / 'configs' / 'context_cluster' / 'README.md').write_text(f'{before}{report.START}{report.END}')
    (tmp_path / 'configs' / 'clustr' / 'README.md').write_text(before)  # no markers: left alone
    out = report.update_readmes(short_run, root=tmp_path, log=lambda *_: None)
    assert (tmp_path / 'configs' / 'clustr' / 'README.md') in out['no_markers']
    assert (tmp_path / 'configs' / 'clustr' / 'README.md').read_text() == before
    text = (tmp_path / 'README.md').read_text()
    assert text.startswith(before + report.START) and text.endswith(report.END + after)
    assert 'old numbers' not in text
    results = json.loads((short_run / 'results.json').read_text())
    rows = report.parse_markdown_table(text)
    assert [r['model (toy protocol)'].strip('*') for r in rows] == [r['model'] for r in results['costs']]
    coc = (tmp_path / 'configs' / 'context_cluster' / 'README.md').read_text()
    assert 'CoC-tiny' in coc and 'ResNet-18' in coc  # the family's rows beside the task's baseline
    # a second regeneration changes nothing (idempotent)
    report.update_readmes(short_run, root=tmp_path, log=lambda *_: None)
    assert (tmp_path / 'README.md').read_text() == text


def test_published_numbers_resolve():
    data = load_published()
    for entry in FULL_SIZE:
        assert (REPO / entry.config).is_file(), entry.config
        row = published_row(entry, data)
        assert set(row) == set(entry.numbers)
    coc_tiny = next(e for e in FULL_SIZE if e.model == 'CoC-Tiny')
    # the paper's 5.3 "M" are units of 2**20 parameters (published.yml: params_unit)
    assert published_row(coc_tiny)['params_M'] == pytest.approx(5.3 * 2**20 / 1e6)
    assert PUBLISHED_YML.is_file()


def test_full_size_pass_resumes_from_its_cache(tmp_path):
    calls = []

    def counter(config, shape):
        calls.append(config)
        if 'medium' in str(config):
            return dict(error='boom')
        return dict(params=10, flops=20, uncounted={}, seconds=0.1)

    entries = [e for e in FULL_SIZE if e.family == 'context_cluster'][:3]
    cache = tmp_path / 'cache.json'
    rows = measure_full_size(entries, counter, cache=cache, log=lambda *_: None)
    assert [r.get('flops') for r in rows] == [20, 20, None] and rows[2]['error'] == 'boom'
    assert len(calls) == 3
    rows = measure_full_size(entries, counter, cache=cache, log=lambda *_: None)
    assert len(calls) == 4  # only the failed one is counted again
    assert rows[0]['params'] == 10 and rows[0]['published'] == published_row(entries[0])


def test_operator_scaling_skips_what_would_exceed_the_limit():
    assert _predict([(100, 1.0)], 400, 2.0) == pytest.approx(16.0)  # all-pairs growth
    assert _predict([(100, 1.0), (400, 4.0)], 1600, 1.0) == pytest.approx(16.0)  # linear, from the last point
    rows = measure_operators([(16, 16), (64, 64)], pairs=['coc_mixer'], rounds=1, max_seconds=1e-9,
                             log=lambda *_: None)
    first = [r for r in rows if r['height'] == 16]
    second = [r for r in rows if r['height'] == 64]
    assert all(r['status'] == 'ok' for r in first)
    assert all(r['status'].startswith('skipped: predicted') for r in second)
    with pytest.raises(ValueError, match='unknown operator pairs'):
        measure_operators([(16, 16)], pairs=['nope'])
    assert 'clustr_attention' in PAIR_NAMES


def test_ratios_use_the_same_task_and_precision():
    rows = [dict(task='a', model='base', is_baseline=True, precision='fp32', latency_ms=2.0),
            dict(task='a', model='x', is_baseline=False, precision='fp32', latency_ms=3.0),
            dict(task='b', model='y', is_baseline=False, precision='fp32', latency_ms=3.0)]
    add_ratios(rows)
    assert [r['latency_ms_ratio'] for r in rows] == [1.0, 1.5, None]
    assert rows[2]['baseline'] is None


def test_command_line_errors():
    runs = protocol_runs('short')
    with pytest.raises(SystemExit, match='unknown tasks'):
        select_runs(runs, ['segmentation'], None)
    with pytest.raises(SystemExit):
        parse_args(['run', '--op-sizes', '800by1333'])
    args = parse_args(['run', '--mode', 'short', '--skip-accuracy'])
    assert 'accuracy' not in args.parts and args.op_sizes == [(32, 32), (64, 64)]
    assert len(short_selection(runs)) == 2 * len({r.task for r in runs})
    text = report.markdown_table(['a', 'b|c'], [['1', 'x|y']])
    assert report.parse_markdown_table(text) == [{'a': '1', 'b|c': 'x|y'}]


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error without a GPU')
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match='--device cuda'):
        check_device('cuda')
    with pytest.raises(ValueError, match='device must be one of'):
        check_device('tpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU (not exercised on the CPU machines)')
def test_cuda_costs_with_autocast():
    from mmcluster.benchmark.measure import measure_costs
    from mmcluster.benchmark.protocol import prepare_data
    runs = short_selection([r for r in protocol_runs('short') if r.task == 'classification'])
    rows = measure_costs(runs, mode='short', device='cuda', rounds=1, repeats=1, data=prepare_data('short'),
                         log=lambda *_: None)
    assert {r['precision'] for r in rows} == {'fp32', 'fp16', 'bf16'}
    for row in rows:
        assert row['error'] is None and row['latency_ms'] > 0 and row['train_mem_mib'] > 0


def _child(code):
    return [sys.executable, '-c', code]


@pytest.mark.parametrize('code, limits, expected', [
    # a count that outgrows the memory limit is stopped, and the row says so
    ('import time; b = bytearray(400 << 20); b[::4096] = b"x" * len(b[::4096]); time.sleep(30)',
     dict(timeout=60, max_mib=100), r'^stopped at \d+ MiB of memory \(limit 100 MiB\) after \d+ s$'),
    ('import time; time.sleep(30)', dict(timeout=1, max_mib=1e6), r'^timed out after 1 s$'),
    # warnings after the traceback's last line do not hide the exception
    ('import sys, warnings; warnings.warn("noise"); raise ValueError("bad shape 0x0")',
     dict(timeout=60, max_mib=1e6), r'^ValueError: bad shape 0x0$'),
    ('import sys; sys.exit(3)', dict(timeout=60, max_mib=1e6), r'^exit status 3$'),
])
def test_guarded_count_names_why_it_failed(code, limits, expected):
    from mmcluster.benchmark.flops import run_guarded
    error, seconds = run_guarded(_child(code), poll=0.1, **limits)
    assert re.match(expected, error), error
    assert seconds < 20


def test_guarded_count_succeeds_silently():
    from mmcluster.benchmark.flops import run_guarded
    assert run_guarded(_child('print(1)'), timeout=60, max_mib=1e6)[0] is None
