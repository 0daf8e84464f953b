"""ONNX export (mmcluster.deployment, tools/deployment/pytorch2onnx.py): onnxruntime against PyTorch eager on new
inputs (not the export example), features and cluster assignments, at the export size and at other sizes.

PyTorch eager is the reference here: the export must compute the same function. Default tests export small
pieces (the exporter's replaced symbolics, the clustering layers, one backbone and one classifier at tiny
sizes); every backbone and the toy classifiers through the tool are ``slow``.
"""
import inspect
import sys
import warnings

import pytest
import torch
from registry_cases import one_thread  # noqa: F401  (autouse: one thread per test)

pytest.importorskip('onnxruntime')

from mmcluster.deployment.models import (DeployWrapper, OnGrid, backbone_classes, build_backbone,  # noqa: E402
                                         compare_outputs, strip_eval_identities)
from mmcluster.deployment.onnx_export import (check_onnx, export_and_check, export_onnx, ort_session,  # noqa: E402
                                              register_symbolics)
from mmcluster.models.layers.clustering_attention import ClusteringAttention  # noqa: E402
from mmcluster.models.layers.context_cluster import ContextClusterLayer  # noqa: E402


def _dpc_rows_follow_trace() -> bool:
    """Whether DPC-kNN takes every row when traced (else its number of density peaks is frozen by the trace:
    docs/deployment.md, 'DPC-kNN under tracing')."""
    module = sys.modules['mmcluster.models.layers.dpc_knn']
    return 'is_tracing' in inspect.getsource(module)


class Ops(torch.nn.Module):
    """The ops whose exporter symbolics mmcluster replaces: stable sort with ties, index_add with repeated
    indices, scatter_reduce(amax)."""

    def forward(self, x, idx):
        keys = (x * 2).round()  # many ties
        order = torch.sort(keys, dim=1, stable=True).indices
        desc = torch.sort(keys, dim=1, descending=True, stable=True).indices
        flags = torch.sort((keys > 0).to(torch.uint8), dim=1, stable=True).indices
        summed = x.new_zeros(6, x.shape[1]).index_add(0, idx, x)
        cmax = x.new_full((6, x.shape[1]), float('-inf')).scatter_reduce(0, idx[:, None].expand_as(x), x, 'amax')
        return order, desc, flags, summed, cmax


def test_replaced_symbolics_match_torch(tmp_path):
    x = torch.randn(10, 7)
    idx = torch.tensor([0, 1, 1, 2, 2, 2, 5, 5, 0, 3])  # repeated ids: the exporter's own index_add keeps one
    register_symbolics()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # the TorchScript exporter's notice (our choice)
        torch.onnx.export(Ops(), (x, idx), str(tmp_path / 'ops.onnx'), dynamo=False, opset_version=17,
                          input_names=['x', 'idx'])
    session = ort_session(tmp_path / 'ops.onnx')
    for seed in range(3):
        x = torch.randn(10, 7, generator=torch.Generator().manual_seed(seed))
        ref = Ops()(x, idx)
        got = session.run(None, dict(x=x.numpy(), idx=idx.numpy()))
        for name, a, b in zip(('order', 'desc', 'flags', 'index_add', 'scatter_amax'), ref, got):
            assert torch.equal(a, torch.as_tensor(b).to(a.dtype)) if not a.is_floating_point() else \
                torch.allclose(a, torch.as_tensor(b), atol=1e-6), name


@pytest.mark.xfail(not _dpc_rows_follow_trace(), strict=False,
                   reason='DPC-kNN freezes its number of density peaks when traced (docs/deployment.md)')
def test_clustering_attention_export_new_inputs(tmp_path):
    """ClusTR's DPC-kNN clustering attention: equal features and equal cluster ids on inputs other than the
    export example (the number of density peaks differs between inputs)."""
    torch.manual_seed(0)
    wrapper = DeployWrapper(OnGrid(ClusteringAttention(32, 2, ratios=(4, 2)), (6, 8)).train(False))
    x = torch.randn(2, 48, 32)
    names = export_onnx(wrapper, x, tmp_path / 'attn.onnx', dynamic=False)
    assert sum(n.startswith('assign') for n in names) == 2  # one record per clustered scale
    session = ort_session(tmp_path / 'attn.onnx')
    for seed in range(4):
        x = torch.randn(2, 48, 32, generator=torch.Generator().manual_seed(seed + 1))
        with torch.no_grad():
            ref = wrapper(x)
        diff = compare_outputs(ref, session.run(None, {'images': x.numpy()}))
        assert diff['max_rel'] < 1e-5 and diff['assign_agree'] == 1.0, (seed, diff)


def test_context_cluster_layer_static_only(tmp_path):
    """The CoC token mixer: equal outputs and centre assignments at the export size; at another size the
    region layout (computed in Python from the size) is frozen, which the check reports instead of passing."""
    torch.manual_seed(0)
    layer = ContextClusterLayer(16, heads=2, head_dim=8, proposal=2, fold=2).train(False)
    wrapper = DeployWrapper(layer)
    result = export_and_check('coc_layer', wrapper, (10, 14), [(12, 10)], out_dir=tmp_path, channels=16)
    assert result.error is None, result.error
    same = result.checks[0]
    assert same.max_rel < 1e-5 and same.assign_agree == 1.0, same
    assert result.dynamic_ok is False, result.checks  # not silently "ok" at another size


def test_clusterformer_mixer_static_only(tmp_path):
    """ClusterFormer's clustering layer (recurrent cross-attention, regions of uneven size at 10x14): equal
    outputs and cluster assignments at the export size; before its sizes were Python ints, onnxruntime refused
    the graph (a traced region-layout modulo frozen to a zero divisor)."""
    from mmcluster.models.layers.clusterformer_mixer import ClusterFormerMixer
    torch.manual_seed(0)
    mixer = ClusterFormerMixer(16, heads=2, head_dim=8, num_centers=2, window_size=4, num_iters=2).train(False)
    result = export_and_check('clusterformer_mixer', DeployWrapper(mixer), (10, 14), [(12, 10)], out_dir=tmp_path,
                              channels=16)
    assert result.error is None, result.error
    same = result.checks[0]
    assert same.max_rel < 1e-5 and same.assign_agree == 1.0, same
    assert result.dynamic_ok is False, result.checks


def test_kmax_convnext_backbone_dynamic(tmp_path):
    """A backbone without data-dependent Python values: one graph for every size."""
    model = build_backbone(next(c for c in backbone_classes() if c.__name__ == 'KMaXConvNeXt'), 'tiny',
                           out_indices=(0, 1))
    strip_eval_identities(model)
    result = export_and_check('kmax', DeployWrapper(model), (32, 48), [(48, 32), (40, 40)], out_dir=tmp_path)
    assert result.error is None, result.error
    assert result.export_size_ok and result.dynamic_ok, result.checks
    assert all(c.max_rel < 1e-5 for c in result.checks)


def test_classifier_export(tmp_path):
    """An mmpretrain ImageClassifier with an mmcluster backbone: the scores, through the classifier's tensor
    mode (backbone, GAP neck, linear head)."""
    pytest.importorskip('mmpretrain')
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='KMaXConvNeXt', arch='tiny', out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=768, loss=dict(type='CrossEntropyLoss'))))
    model.train(False)
    strip_eval_identities(model)
    wrapper = DeployWrapper(model)
    export_onnx(wrapper, torch.randn(1, 3, 32, 32), tmp_path / 'cls.onnx')
    checks = check_onnx(ort_session(tmp_path / 'cls.onnx'), wrapper, [(32, 32), (40, 56)], batch=2)
    assert all(c.ok() for c in checks), checks
    with torch.no_grad():
        assert wrapper(torch.randn(2, 3, 32, 32))[0].shape == (2, 5)


def test_wrapper_refuses_training_mode():
    layer = ContextClusterLayer(16, heads=2, head_dim=8)
    with pytest.raises(ValueError, match='eval mode'):
        DeployWrapper(layer)


def test_strip_eval_identities():
    model = build_backbone(next(c for c in backbone_classes() if c.__name__ == 'ClusTR'), 'tiny',
                           drop_path_rate=0.1)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        assert strip_eval_identities(model) > 0
        assert not any(type(m).__name__ == 'DropPath' or isinstance(m, torch.nn.Dropout) for m in model.modules())
        for a, b in zip(ref, model(x)):
            assert torch.equal(a, b)


@pytest.mark.slow
def test_every_backbone_exports(tmp_path):
    """tools/deployment/pytorch2onnx.py --backbone all: every backbone equal at its export size (new input)."""
    from conftest import load_tool
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    assert tool.main(['--backbone', 'all', '--shape', '64', '96', '--out', str(tmp_path)]) == 0
