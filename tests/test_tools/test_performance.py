"""tools/benchmark/performance.py: the smoke run of the floor table (no timing assertions) and its TCFormer
DPC-kNN baseline, checked against mmcluster's ``dpc_knn`` (itself tested against TCFormer's stored outputs)."""
import math

import torch
from conftest import load_tool

perf = load_tool('tools/benchmark/performance.py')


def test_tcformer_formulation_clusters_like_dpc_knn():
    from mmcluster.models.layers.dpc_knn import dpc_knn
    for seed, (n, c) in enumerate([(40, 6), (97, 16)]):
        x = torch.randn(2, n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        m = math.ceil(n / 8)
        assert torch.equal(perf.tcformer_dpc_knn(x, m), dpc_knn(x, m)[0])


def test_quick_run_prints_every_row(capsys):
    res = perf.main(['--quick', '--only', 'coc-tiny', 'dpc'])
    out = capsys.readouterr().out
    assert 'matmul probe' in out and 'coc-tiny' in out and 'dpc-knn N=256' in out
    rows = {(r['name'], r['mode']) for r in res['rows']}
    assert rows == {('coc-tiny', 'forward'), ('coc-tiny', 'train'), ('dpc-knn N=256', 'forward'),
                    ('dpc-knn N=576', 'forward')}
    coc = [r for r in res['rows'] if r['name'] == 'coc-tiny']
    assert coc[1]['macs'] == 3 * coc[0]['macs'] > 0  # training floor = 3 x the forward's multiply-adds
    assert all(r['ms'] > 0 for r in res['rows'])
