"""torch.compile (mmcluster.deployment.compile_check, tools/deployment/compile_check.py): compiled outputs and
cluster assignments equal to eager, and graph breaks only where docs/deployment.md says why they stay.

Default tests trace with ``aot_eager`` (dynamo + AOT autograd, no code generation: seconds); the inductor
compile of every backbone and of the toy configs' heads is ``slow``.
"""
import pytest
import torch
from registry_cases import one_thread  # noqa: F401  (autouse: one thread per test)

from mmcluster.deployment.compile_check import KNOWN_BREAKS, compile_check, graph_breaks, unknown_breaks
from mmcluster.deployment.models import DeployWrapper, OnGrid, backbone_classes, build_backbone
from mmcluster.models.layers.clustering_attention import ClusteringAttention
from mmcluster.models.layers.context_cluster import ContextClusterLayer


def _check(name, wrapper, x):
    result = compile_check(name, wrapper, x, backend='aot_eager', timing=False)
    assert result.error is None, result.error
    assert result.max_rel <= 1e-5, result
    if wrapper.recorder_names and not result.records_lost:
        assert result.assign_agree == 1.0, result
    assert not unknown_breaks(result.breaks), [str(b) for b in unknown_breaks(result.breaks)]
    return result


def test_clustering_attention_compiles():
    """ClusTR's DPC-kNN attention: equal outputs; its breaks are DPC-kNN's documented ones (and the record's)."""
    torch.manual_seed(0)
    wrapper = DeployWrapper(OnGrid(ClusteringAttention(32, 2, ratios=(4, 2)), (6, 8)).train(False))
    result = _check('clustering_attention', wrapper, torch.randn(2, 48, 32))
    allowed = {w for w in KNOWN_BREAKS if w[0].endswith(('dpc_knn.py', 'cluster_record.py'))}
    assert {b.where for b in result.breaks} <= allowed, [str(b) for b in result.breaks]


def test_context_cluster_layer_compiles():
    torch.manual_seed(0)
    wrapper = DeployWrapper(ContextClusterLayer(16, heads=2, head_dim=8, proposal=2, fold=2).train(False))
    _check('coc_layer', wrapper, torch.randn(1, 16, 10, 14))


def test_kmax_convnext_compiles():
    model = build_backbone(next(c for c in backbone_classes() if c.__name__ == 'KMaXConvNeXt'), 'tiny',
                           out_indices=(0, 1))
    _check('kmax_convnext', DeployWrapper(model), torch.randn(1, 3, 32, 32))


def test_graph_breaks_are_grouped_by_function():
    """A break is attributed to the mmcluster function where it happens (what KNOWN_BREAKS is keyed by)."""
    def fn(x):
        return x * int(x.sum())  # .item(): a graph break in this test file, not in mmcluster

    graphs, breaks = graph_breaks(fn, torch.ones(3))
    assert graphs >= 1 and breaks and all(not b.known for b in breaks)
    assert breaks[0].where[1] == 'fn'


#: inductor compiles every graph between breaks with a C++ compiler: 51-530 s per backbone and ~2.5 min per toy
#: model on the shared 2-core machine (docs/deployment.md), far beyond the suite's 15-minute default timeout
INDUCTOR_TIMEOUT_S = 3 * 3600


@pytest.mark.slow
@pytest.mark.timeout(INDUCTOR_TIMEOUT_S)
@pytest.mark.parametrize('models', [
    pytest.param(['--backbones', 'all'], id='backbones'),
    pytest.param(['--backbones', '--toy-configs'], id='toy_models', marks=pytest.mark.xfail(strict=True, reason=(
        'inductor: the ClusterFormer DETR and semantic toy models differ from eager (max rel. 0.34 and 0.028, '
        'measured 2026-11-29; aot_eager is exact), the other 17 toy models are equal: docs/deployment.md'))),
])
def test_every_backbone_and_head_compiles_with_inductor(models):
    """tools/deployment/compile_check.py: every backbone, and every toy config's whole model (its neck and
    heads), compiled by inductor, equal to eager."""
    from conftest import load_tool
    tool = load_tool('tools/deployment/compile_check.py')
    assert tool.main([*models, '--no-timing', '--shape', '64', '96']) == 0
