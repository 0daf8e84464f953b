"""Clustering-guided multi-scale attention against a slow reference of ClusTR Eqs. 3, 5, 6, 7 and 8.

The reference projects all tokens first and then clusters the projected keys / values (Eq. 5:
``Cluster(X W^K)``, ``Cluster(X W^V)`` with one assignment per scale and weights ``exp(s_i)``), loops over
heads with an explicit softmax, and sums the scales (Eq. 8) or takes one softmax over their union (Eq. 7).
The module merges first and projects the merged tokens; the two agree because the merge is a normalised mean.
The assignments come from the exact-arithmetic DPC-kNN reference of ``test_dpc_knn.py`` (written from the
equations, not the package's ``dpc_knn``).
"""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcluster.models.layers.clustering_attention import ClusteringAttention
from mmcluster.models.utils.cluster_record import recording_clusters

_spec = importlib.util.spec_from_file_location('_dpc_knn_reference', Path(__file__).with_name('test_dpc_knn.py'))
_ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ref)
slow_dpc = _ref.slow_dpc


def slow_attention(mod, x, multiscale):
    B, N, C = x.shape
    H, d = mod.num_heads, C // mod.num_heads
    Wq, bq = mod.q.weight, mod.q.bias
    q = x @ Wq.T + bq
    per_scale = []  # (K [B, M, C], V [B, M, C])
    for j, ratio in enumerate(mod.ratios):
        Wkv, bkv = mod.kv[j].weight, mod.kv[j].bias
        K = x @ Wkv[:C].T + bkv[:C]
        V = x @ Wkv[C:].T + bkv[C:]
        M = min(N, math.ceil(N / ratio))
        if M < N:
            s = x @ mod.score.weight[mod._score_col[j]] + mod.score.bias[mod._score_col[j]]
            w = torch.exp(s)  # Eq. 3 weights, normalised per cluster
            Km = torch.zeros(B, M, C, dtype=x.dtype)
            Vm = torch.zeros(B, M, C, dtype=x.dtype)
            for h in range(H if mod.cluster_per_head else 1):
                ch = slice(h * d, (h + 1) * d) if mod.cluster_per_head else slice(0, C)
                feats = K[..., ch] if mod.cluster_per_head else x  # Eq. 6 per head, or X once for all heads
                idx, _ = slow_dpc(feats.detach().numpy(), M, k=mod.k, assign=mod.assign)
                for b in range(B):
                    for m in range(M):
                        sel = torch.from_numpy(idx[b] == m)
                        ww = w[b, sel] / w[b, sel].sum()
                        Km[b, m, ch] = (ww[:, None] * K[b, sel, ch]).sum(0)
                        Vm[b, m, ch] = (ww[:, None] * V[b, sel, ch]).sum(0)
            K, V = Km, Vm
        per_scale.append((K, V))
    out = torch.zeros(B, N, C, dtype=x.dtype)
    for b in range(B):
        for h in range(H):
            ch = slice(h * d, (h + 1) * d)
            qh = q[b, :, ch]
            if multiscale == 'sum':  # Eq. 8: sum over scales of the per-scale attention
                for K, V in per_scale:
                    a = torch.softmax(qh @ K[b, :, ch].T / math.sqrt(d), dim=-1)
                    out[b, :, ch] += a @ V[b, :, ch]
            else:  # Eq. 7: one softmax over the union of the clustered tokens of all scales
                Kc = torch.cat([K[b, :, ch] for K, _ in per_scale])
                Vc = torch.cat([V[b, :, ch] for _, V in per_scale])
                out[b, :, ch] = torch.softmax(qh @ Kc.T / math.sqrt(d), dim=-1) @ Vc
    return out @ mod.proj.weight.T + mod.proj.bias


@pytest.mark.parametrize('ratios,heads,multiscale,options', [
    ((4, 1), 2, 'sum', {}), ((4, 1), 2, 'concat', {}), ((8, 3), 1, 'sum', {}), ((5, ), 4, 'sum', {}),
    ((1, ), 2, 'sum', {}), ((16, 4, 2), 2, 'concat', {}), ((4, 1), 2, 'sum', dict(assign='parent')),
    ((8, 3), 2, 'concat', dict(cluster_per_head=True)), ((4, ), 2, 'sum', dict(cluster_per_head=True,
                                                                                 assign='parent'))])
def test_matches_slow_reference(ratios, heads, multiscale, options):
    torch.manual_seed(0)
    mod = ClusteringAttention(8, heads, ratios, multiscale=multiscale, **options).double().eval()
    x = torch.randn(2, 30, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mod(x), slow_attention(mod, x, multiscale), rtol=1e-5, atol=1e-6)


def test_ratio_one_is_plain_attention():
    torch.manual_seed(1)
    mod = ClusteringAttention(8, 2, (1, )).eval()
    assert mod.score is None and len(mod.kv) == 1
    x = torch.randn(1, 10, 8)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([mod.q.weight, mod.kv[0].weight]))
        mha.in_proj_bias.copy_(torch.cat([mod.q.bias, mod.kv[0].bias]))
        mha.out_proj.weight.copy_(mod.proj.weight)
        mha.out_proj.bias.copy_(mod.proj.bias)
    torch.testing.assert_close(mod(x), mha(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_num_clusters_small_maps_and_records():
    torch.manual_seed(0)
    mod = ClusteringAttention(8, 2, (64, 16, 1))
    assert mod.num_clusters(3136) == [49, 196, 3136]
    assert mod.num_clusters(100) == [2, 7, 100]
    assert mod.num_clusters(1) == [1, 1, 1]  # M == N: no clustering
    with recording_clusters(mod) as records:
        out = mod(torch.randn(2, 1, 8))
    assert out.shape == (2, 1, 8) and records == []
    x = torch.randn(2, 40, 8, dtype=torch.float64)
    mod.double()
    with recording_clusters(mod) as records:
        mod(x, hw=(5, 8))
    assert [(r.name, r.kind, r.step, r.meta, r.num_clusters, r.spatial_shape) for r in records] == [
        ('', 'hard', 0, {'ratio': 64}, 1, (5, 8)), ('', 'hard', 1, {'ratio': 16}, 3, (5, 8))]
    for r in records:  # the assignment of the independent reference, on the token grid
        idx, _ = slow_dpc(x.numpy(), r.num_clusters, k=5)
        np.testing.assert_array_equal(r.assignment.numpy(), idx)
        assert r.labels().shape == (2, 5, 8)
    with recording_clusters(mod) as records:
        mod(x)  # without the grid: a 1-d grid of N tokens
    assert [r.spatial_shape for r in records] == [(40, ), (40, )]
    mod(x)  # nothing recorded outside the context
    per_head = ClusteringAttention(8, 2, (4, ), cluster_per_head=True)
    with recording_clusters(per_head) as records:
        per_head(torch.randn(3, 12, 8), hw=(3, 4))
    assert len(records) == 1 and records[0].assignment.shape == (3, 2, 12) and records[0].labels().shape == (3, 2, 3, 4)


@pytest.mark.parametrize('options', [{}, dict(cluster_per_head=True, assign='parent')])
def test_gradients_reach_score_and_projections(options):
    torch.manual_seed(2)
    mod = ClusteringAttention(8, 2, (4, 1), **options)
    x = torch.randn(2, 30, 8, requires_grad=True)
    mod(x).square().mean().backward()
    for name, p in mod.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert x.grad is not None


def test_bf16_autocast_and_dropout():
    torch.manual_seed(3)
    mod = ClusteringAttention(16, 2, (4, 1), attn_drop=0.1, proj_drop=0.1)
    x = torch.randn(1, 37, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = mod(x)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    no_dropout = ClusteringAttention(16, 2, (4, 1))
    no_dropout.load_state_dict(mod.state_dict())
    assert not torch.allclose(mod(x), no_dropout(x))  # training: dropout active
    mod.eval()
    torch.testing.assert_close(mod(x), no_dropout(x))  # eval: no dropout


def test_bad_arguments():
    with pytest.raises(ValueError, match='divisible'):
        ClusteringAttention(10, 3)
    with pytest.raises(ValueError, match='ratios'):
        ClusteringAttention(8, 2, (0.5, ))
    with pytest.raises(ValueError, match='ratios'):
        ClusteringAttention(8, 2, ())
    with pytest.raises(ValueError, match='multiscale'):
        ClusteringAttention(8, 2, (4, 1), multiscale='mean')
    with pytest.raises(ValueError, match=r"assign must be one of \('center', 'parent'\)"):
        ClusteringAttention(8, 2, (4, 1), assign='nearest_denser')
