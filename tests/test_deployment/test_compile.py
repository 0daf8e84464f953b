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


@pytest.mark.parametrize('size', [(10, 14), (9, 13)], ids=['equal-regions', 'uneven-regions'])
def test_context_cluster_layer_compiles(size):
    """The region layout is built from Python ints (traced into the graph, no break): the only breaks left are
    the recording's, and plain inference compiles into one graph."""
    torch.manual_seed(0)
    layer = ContextClusterLayer(16, heads=2, head_dim=8, proposal=2, fold=2).train(False)
    result = _check('coc_layer', DeployWrapper(layer), torch.randn(1, 16, *size))
    assert {b.where for b in result.breaks} <= {('models/utils/cluster_record.py', 'record_clusters')}, \
        [str(b) for b in result.breaks]
    plain_layer = ContextClusterLayer(16, heads=2, head_dim=8, proposal=2, fold=2).train(False)  # not recording
    plain = torch._dynamo.explain(plain_layer)(torch.randn(1, 16, *size))
    assert plain.graph_break_count == 0, plain.break_reasons


def test_kmax_convnext_compiles():
    model = build_backbone(next(c for c in backbone_classes() if c.__name__ == 'KMaXConvNeXt'), 'tiny',
                           out_indices=(0, 1))
    _check('kmax_convnext', DeployWrapper(model), torch.randn(1, 3, 32, 32))


def _heads_softmax_over_queries(query, query_pos, value, k_proj, v_proj, q_proj, heads):
    """One E-step + M-step of the recurrent clustering written the direct way, in plain PyTorch: logits
    ``q k^T`` ``[B, E, Q, N]``, softmax over the queries (dim -2), update ``Gamma V``."""
    B, Q, C = query.shape
    N = value.shape[1]

    def split(x, n):
        return x.view(B, n, heads, C // heads).transpose(1, 2)

    k, v, q = split(k_proj(value), N), split(v_proj(value), N), split(q_proj(query + query_pos), Q)
    return split(query, Q) + torch.matmul(torch.matmul(q, k.transpose(-1, -2)).softmax(dim=-2), v)


def _projections(channels):
    return [torch.nn.Linear(channels, channels) for _ in range(3)]


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason='torch 2.14.1 inductor (CPU) miscompiles a softmax over dim -2 of q k^T when the '
                   'projections are in the same graph (98 % off; eager and aot_eager exact): the reason the '
                   'clustering layers use token-major logits. XPASS = fixed upstream: docs/deployment.md')
def test_inductor_softmax_over_queries_upstream_bug():
    torch.manual_seed(0)  # how far off the miscompiled result is depends on the values
    query, query_pos, value = torch.randn(1, 50, 128), torch.randn(1, 50, 128), torch.randn(1, 128, 128)
    k_proj, v_proj, q_proj = _projections(128)
    with torch.no_grad():
        ref = _heads_softmax_over_queries(query, query_pos, value, k_proj, v_proj, q_proj, 4)
        torch._dynamo.reset()
        out = torch.compile(_heads_softmax_over_queries, backend='inductor', dynamic=False)(
            query, query_pos, value, k_proj, v_proj, q_proj, 4)
    torch._dynamo.reset()
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-4


def test_recurrent_clustering_cross_attention_compiles_with_inductor():
    """The same computation through mmcluster's layer (token-major E-step): inductor equals eager, with the
    projections in the compiled graph (ClusterFormer's DETR and Mask2Former-style decoders)."""
    from mmcluster.models.layers.clusterformer_cross_attention import RecurrentClusteringCrossAttention
    torch.manual_seed(0)
    layer = RecurrentClusteringCrossAttention(128, 4, num_iters=3).eval()
    query, query_pos, value = torch.randn(1, 50, 128), torch.randn(1, 50, 128), torch.randn(1, 128, 128)
    with torch.no_grad():
        ref = layer(query, value=value, query_pos=query_pos)
        torch._dynamo.reset()
        out = torch.compile(layer, backend='inductor', dynamic=False)(query, value=value, query_pos=query_pos)
    torch._dynamo.reset()
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-5


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
    pytest.param(['--backbones', '--toy-configs'], id='toy_models'),
])
def test_every_backbone_and_head_compiles_with_inductor(models):
    """tools/deployment/compile_check.py: every backbone, and every toy config's whole model (its neck and
    heads), compiled by inductor, equal to eager."""
    from conftest import load_tool
    tool = load_tool('tools/deployment/compile_check.py')
    assert tool.main([*models, '--no-timing', '--shape', '64', '96']) == 0


def test_clustr_training_step_compiles_with_inductor_at_two_sizes():
    """The training step (forward + backward) compiled by inductor with static sizes (mmengine's
    ``compile=dict(dynamic=False)``), at two input sizes: outputs and every parameter's gradient equal eager's."""
    from mmcluster.deployment.compile_check import compile_train_check
    from mmcluster.models.backbones.clustr import ClusTR
    torch.manual_seed(0)
    model = ClusTR(dict(depths=[1, 1], embed_dims=[16, 32], num_heads=[1, 2], ratios=[[4], [1]], mlp_ratios=[2, 2]),
                   out_indices=(0, 1))
    model.init_weights()
    inputs = [torch.randn(1, 3, 32, 48), torch.randn(1, 3, 40, 56)]
    result = compile_train_check('clustr', model, inputs, backend='inductor', timing=False)
    assert result.error is None, result.error
    assert result.max_rel <= 1e-4 and result.grad_rel <= 1e-4, result
    assert result.outputs_equal


@pytest.mark.xfail(strict=True, raises=Exception,
                   reason='torch 2.14.1 inductor cannot compile, with symbolic sizes (dynamic=None on a second size, '
                   'or dynamic=True), the training step of a depthwise conv on a channels-last view '
                   '("cannot determine truth value of Relational": it orders strides such as 64*s27*s53 < 64); '
                   "ClusTR's FFN, Context Clusters, ClusterFormer and the kMaX ConvNeXt hit this class of failure: "
                   'mmengine configs use compile=dict(dynamic=False). XPASS = fixed upstream: docs/deployment.md')
def test_inductor_dynamic_shapes_channels_last_conv_upstream_bug():
    torch.manual_seed(0)
    fc1, dwconv = torch.nn.Linear(32, 64), torch.nn.Conv2d(64, 64, 3, 1, 1, groups=64)

    def ffn(x):
        return dwconv(fc1(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    compiled = torch.compile(ffn, backend='inductor', dynamic=True)
    try:
        for size in [(8, 12), (4, 6)]:
            x = torch.randn(1, *size, 32, requires_grad=True)
            compiled(x).sum().backward()
            assert torch.allclose(x.grad, torch.autograd.grad(ffn(x).sum(), x)[0], atol=1e-5)
    finally:
        torch._dynamo.reset()


def test_compile_train_check_catches_different_gradients():
    """The training check compares gradients, not only outputs: a gradient hook that only eager registers
    (doubling the gradient, the outputs unchanged) is reported."""
    from mmcluster.deployment.compile_check import compile_train_check

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.linear(x)
            if not torch.compiler.is_compiling():
                y.register_hook(lambda g: 2 * g)  # eager's gradient is doubled, the outputs are not
            return y

    result = compile_train_check('scaled', Scaled(), [torch.randn(2, 4)], backend='aot_eager', timing=False)
    assert result.error is None, result.error
    assert result.max_rel == 0.0 and result.grad_rel > 0.4 and not result.outputs_equal
