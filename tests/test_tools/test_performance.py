"""tools/benchmark/performance.py: the smoke run of the floor table (no timing assertions) and its TCFormer
DPC-kNN baseline, checked against mmcluster's ``dpc_knn`` (itself tested against TCFormer's stored outputs)."""
import math

import pytest
import torch
from conftest import load_tool

perf = load_tool('tools/benchmark/performance.py')


def test_tcformer_formulation_clusters_like_dpc_knn():
    from mmcluster.models.layers.dpc_knn import dpc_knn
    for seed, (n, c) in enumerate([(40, 6), (97, 16)]):
        x = torch.randn(2, n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        m = math.ceil(n / 8)
        idx, centers = perf.tcformer_dpc_knn(x, m)
        ref_idx, ref_centers = dpc_knn(x, m)
        assert torch.equal(idx, ref_idx) and torch.equal(centers, ref_centers)


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


@pytest.mark.slow
def test_quick_run_with_compiled_inference(capsys):
    """``--compiled`` adds a row per model, against the forward's floor (inductor compile: ~1 minute)."""
    res = perf.main(['--quick', '--compiled', '--only', 'coc-tiny'])
    assert 'compiled (inductor, freezing)' in capsys.readouterr().out
    rows = {r['mode']: r for r in res['rows'] if r['name'] == 'coc-tiny'}
    assert set(rows) == {'forward', 'train', 'compiled'}
    assert rows['compiled']['macs'] == rows['forward']['macs'] and rows['compiled']['ms'] > 0


def test_inference_fast_paths_equal_the_eager_computation():
    """CoC's fused fc1 + GELU (inference on a CPU) gives the eager (autograd) path's values."""
    from mmcluster.models.backbones.context_cluster import ContextCluster
    torch.manual_seed(0)
    model = ContextCluster('tiny', out_indices=(0, 1, 2, 3)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        fast = model(x)
    eager = model(x)  # gradients enabled: no fused op
    for a, b in zip(fast, eager):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-5)
