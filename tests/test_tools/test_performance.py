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


@pytest.fixture(scope='module')
def quick_fp32_run():
    return perf.main(['--quick', '--only', 'coc-tiny', 'dpc'])


def test_quick_run_prints_every_row(quick_fp32_run):
    res = quick_fp32_run
    rows = {(r['name'], r['mode']) for r in res['rows']}
    assert rows == {('coc-tiny', 'forward'), ('coc-tiny', 'train'), ('dpc-knn N=256', 'forward'),
                    ('dpc-knn N=576', 'forward')}
    coc = [r for r in res['rows'] if r['name'] == 'coc-tiny']
    assert coc[1]['macs'] == 3 * coc[0]['macs'] > 0  # training floor = 3 x the forward's multiply-adds
    assert all(r['ms'] > 0 for r in res['rows'])
    assert (res['device'], res['precision'], res['batch']) == ('cpu', 'fp32', 1)


def test_batch_and_autocast_precision(quick_fp32_run, capsys):
    """``--batch`` multiplies the floor's multiply-adds and the images per second; ``--precision bf16`` runs
    the models and the probe under autocast (on a CPU a correctness smoke only); no verdict outside issue 14's
    setting (CPU, batch 1, fp32)."""
    res = perf.main(['--quick', '--only', 'coc-tiny', '--batch', '2', '--precision', 'bf16'])
    out = capsys.readouterr().out
    assert 'batch 2, bf16' in out and 'PASS' not in out and 'MISS' not in out
    single = {r['mode']: r for r in quick_fp32_run['rows'] if r['name'] == 'coc-tiny'}
    for r in res['rows']:
        assert (r['batch'], r['precision']) == (2, 'bf16')
        assert r['macs'] == 2 * single[r['mode']]['macs']
        assert r['img_s'] == pytest.approx(2e3 / r['ms'])


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error without a GPU')
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match='torch.cuda.is_available'):
        perf.main(['--quick', '--only', 'coc-tiny', '--device', 'cuda'])


def test_bad_settings_are_rejected(capsys):
    for argv in (['--device', 'cuda', '--clock', 'cpu'], ['--threads', '2', '--clock', 'cpu'], ['--batch', '0']):
        with pytest.raises(SystemExit):
            perf.parse_args(argv)
    assert '--clock cpu needs --device cpu' in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_quick_run_on_a_gpu_with_fp16():
    """Issue 14 item 4's command at tiny sizes: every row on the GPU under fp16 autocast."""
    res = perf.main(['--quick', '--device', 'cuda', '--precision', 'fp16', '--batch', '4'])
    assert res['device'] == 'cuda' and res['device_name']
    assert {r['name'] for r in res['rows']} >= {'coc-tiny', 'clustr-tiny'}
    assert all(r['ms'] > 0 for r in res['rows'])


@pytest.mark.slow
def test_quick_run_with_compiled_inference(capsys):
    """``--compiled`` adds a row per model, against the forward's floor (inductor compile: ~1 minute)."""
    res = perf.main(['--quick', '--compiled', '--only', 'coc-tiny'])
    assert 'compiled (inductor, freezing, mode default)' in capsys.readouterr().out
    rows = {r['mode']: r for r in res['rows'] if r['name'] == 'coc-tiny'}
    assert set(rows) == {'forward', 'train', 'compiled'}
    assert rows['compiled']['macs'] == rows['forward']['macs'] and rows['compiled']['ms'] > 0


@pytest.mark.slow
def test_quick_run_with_compiled_training_step(capsys):
    """``--compiled-train`` adds a row per model against the training step's floor (3x the forward's MACs),
    after checking the compiled step's outputs and gradients against eager (inductor compile: ~1 minute)."""
    res = perf.main(['--quick', '--compiled-train', '--only', 'clustr'])
    assert 'training step compiled (inductor, static sizes, mode default)' in capsys.readouterr().out
    rows = {r['mode']: r for r in res['rows'] if r['name'] == 'clustr-tiny'}
    assert set(rows) == {'forward', 'train', 'train-compiled'}
    assert rows['train-compiled']['macs'] == rows['train']['macs'] == 3 * rows['forward']['macs']


def test_compiled_training_check_restores_stochastic_depth():
    """The compiled training step is checked with stochastic depth switched off (compiled code draws other
    random numbers) and the model gets its rates back for the timing (aot_eager: tracing only, seconds)."""
    from mmcluster.models.backbones.clustr import ClusTR
    torch.manual_seed(0)
    model = ClusTR(dict(depths=[1, 1], embed_dims=[16, 32], num_heads=[1, 2], ratios=[[4], [1]]), out_indices=(1, ),
                   drop_path_rate=0.3)
    rates = [m.drop_prob for m in model.modules() if hasattr(m, 'drop_prob')]
    assert rates and max(rates) == pytest.approx(0.3)
    original = perf.torch.compile
    try:
        perf.torch.compile = lambda model, **kw: original(model, **{**kw, 'backend': 'aot_eager'})
        compiled, _ = perf.compile_training(model, torch.randn(1, 3, 32, 48))
    finally:
        perf.torch.compile = original
        torch._dynamo.reset()
    assert [m.drop_prob for m in model.modules() if hasattr(m, 'drop_prob')] == rates
    assert all(p.grad is None for p in model.parameters())


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
