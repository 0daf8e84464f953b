"""DPC-kNN clustering and token merging against slow references written from the equations.

ClusTR paper Eqs. 1-2 (density over the k nearest neighbours, distance to the nearest denser token, score
rho * delta, top-M centres, nearest-centre assignment as TCFormer's code or the paper's chain of nearest denser
tokens), with the tie rules documented in ``mmcluster/models/layers/dpc_knn.py``; ``merge_tokens`` is TCFormer's
normalised weighted mean. The parity tests at the end compare with stored outputs of TCFormer's official
``cluster_dpc_knn`` / ``merge_tokens`` (``tools/parity/make_dpc_knn_fixture.py``).
"""
import functools
import importlib
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcluster.models.layers.dpc_knn import (cluster_softmax_weights, dpc_knn, dpc_knn_dense, dpc_knn_multi,
                                             merge_tokens)

dpc_mod = importlib.import_module('mmcluster.models.layers.dpc_knn')  # the module (the package exports the function)


@functools.lru_cache(maxsize=64)
def _fraction_d2(xb, N, C, dist_scale):
    """Exact squared distances (divided by C if ``dist_scale``) of one sample's tokens (float64 bytes)."""
    x = np.frombuffer(xb, dtype=np.float64).reshape(N, C)
    xf = [[Fraction(float(v)) for v in x[i]] for i in range(N)]
    return [[sum((p - q)**2 for p, q in zip(xf[i], xf[j])) / (C if dist_scale else 1) for j in range(N)]
            for i in range(N)]


def slow_dpc(x, M, k=5, mask=None, dist_scale=True, log_space=False, densest_delta='row', assign='center'):
    """Python loops; squared distances and density exponents in exact rational arithmetic (Fraction).

    rho_i = exp(-expo_i), expo_i = mean of the k smallest d_ij^2 over valid j (self included);
    j denser than i iff rho_j > rho_i or (rho_j == rho_i and j < i); delta_i = min over denser j of d_ij (that j,
    lowest index on ties, is i's parent); for the densest token max_j d_ij (``densest_delta='row'``, paper Eq. 2)
    or max_{p,q} d_pq over the valid tokens of the sample (``'global'``, TCFormer's code); gamma = rho * delta
    (``log_space`` compares -expo + log delta instead, for inputs whose rho underflows); centres = top-M gamma,
    ties by lower index, masked tokens last; ``assign='center'``: every token to the nearest centre (ties: lower
    rank); ``'parent'``: every token follows its parents to the first centre (the densest token, if not a
    centre, to its nearest centre); centres to themselves.
    """
    x = np.asarray(x, dtype=np.float64)
    B, N, C = x.shape
    idx_all = np.zeros((B, N), dtype=np.int64)
    cen_all = np.zeros((B, M), dtype=np.int64)
    for b in range(B):
        valid = np.ones(N, bool) if mask is None else np.asarray(mask[b], bool)
        d2 = _fraction_d2(x[b].tobytes(), N, C, dist_scale)
        kk = min(k, int(valid.sum()))
        expo = [None] * N
        for i in range(N):
            if valid[i]:
                expo[i] = sum(sorted(d2[i][j] for j in range(N) if valid[j])[:kk]) / kk

        def denser(j, i):
            if not valid[j]:
                return False
            return not valid[i] or expo[j] < expo[i] or (expo[j] == expo[i] and j < i)

        global_max = max(d2[p][q] for p in range(N) for q in range(N) if valid[p] and valid[q])
        key, parent = [None] * N, [None] * N
        for i in range(N):
            cands = [(d2[i][j], j) for j in range(N) if denser(j, i)]
            if cands:
                parent[i] = min(cands)[1]
            if not valid[i]:
                key[i] = (1, 0.0, i)
                continue
            if cands:
                delta2 = min(cands)[0]
            elif densest_delta == 'row':
                delta2 = max(d2[i][j] for j in range(N) if valid[j])
            else:
                delta2 = global_max
            if log_space:
                gamma = -math.inf if delta2 == 0 else -float(expo[i]) + 0.5 * math.log(float(delta2))
            else:
                gamma = math.exp(-float(expo[i])) * math.sqrt(float(delta2))
            key[i] = (0, -gamma, i)
        centres = sorted(range(N), key=lambda i: key[i])[:M]

        def nearest_centre(i):
            return min(range(M), key=lambda m: (d2[centres[m]][i], m))

        for i in range(N):
            if assign == 'center':
                idx_all[b, i] = nearest_centre(i)
                continue
            j = i
            while j not in centres and parent[j] is not None:
                j = parent[j]
            idx_all[b, i] = centres.index(j) if j in centres else nearest_centre(j)
        for m, c in enumerate(centres):
            idx_all[b, c] = m
        cen_all[b] = centres
    return idx_all, cen_all


def _case(kind, seed, B=2, N=23, C=6):
    g = torch.Generator().manual_seed(seed)
    if kind == 'gauss':
        return torch.randn(B, N, C, generator=g, dtype=torch.float64)
    if kind == 'duplicates':  # every token repeated ~3 times: exact density ties, delta = 0
        base = torch.randn(B, max(1, N // 3), C, generator=g, dtype=torch.float64)
        return base[:, torch.randint(0, base.shape[1], (N, ), generator=g)]
    if kind == 'grid':  # integer features: many exactly equal distances and densities
        return torch.randint(-1, 2, (B, N, C), generator=g).double()
    raise ValueError(kind)


ASSIGN = ('center', 'parent')
CASES = [('gauss', 0, 5, 5), ('gauss', 1, 11, 2), ('gauss', 2, 1, 1), ('duplicates', 3, 6, 5),
         ('duplicates', 4, 10, 3), ('grid', 5, 7, 5), ('grid', 6, 23, 2), ('grid', 7, 4, 1)]


@pytest.mark.parametrize('kind,seed,M,k', CASES)
@pytest.mark.parametrize('masked', [False, True])
def test_matches_slow_reference(kind, seed, M, k, masked):
    x = _case(kind, seed)
    mask = None
    if masked:
        mask = torch.rand(x.shape[:2], generator=torch.Generator().manual_seed(seed)) > 0.3
        mask[:, 2] = True
    np_mask = None if mask is None else mask.numpy()
    for assign in ASSIGN:
        ref_idx, ref_cen = slow_dpc(x.numpy(), M, k, np_mask, assign=assign)
        chunks = (None, 1, 5, x.shape[1]) if assign == 'center' else (None, )
        for dtype in (torch.float64, torch.float32):
            for chunk in chunks:
                idx, cen = dpc_knn(x.to(dtype), M, k=k, token_mask=mask, chunk_size=chunk, assign=assign)
                msg = f'{dtype} chunk={chunk} assign={assign}'
                np.testing.assert_array_equal(cen.numpy(), ref_cen, err_msg=msg)
                np.testing.assert_array_equal(idx.numpy(), ref_idx, err_msg=msg)


def _blobs():
    """A tight blob (the densest tokens), a looser one and two outliers: many tokens' nearest centre is not the
    centre their chain of denser tokens leads to."""
    g = torch.Generator().manual_seed(11)
    blob = 0.05 * torch.randn(8, 2, generator=g, dtype=torch.float64)
    loose = torch.tensor([1.5, 0.0], dtype=torch.float64) + 0.6 * torch.randn(9, 2, generator=g, dtype=torch.float64)
    out = torch.tensor([[-4.0, 0.3], [5.0, -0.2]], dtype=torch.float64)
    return torch.cat([blob, loose, out]).unsqueeze(0)


def test_assign_parent_differs_from_nearest_centre():
    x = _blobs()
    results = {}
    for assign in ASSIGN:
        ref = slow_dpc(x.numpy(), 3, 3, assign=assign)
        for chunk in (None, 1):
            out = dpc_knn(x, 3, k=3, assign=assign, chunk_size=chunk)
            np.testing.assert_array_equal(out[1].numpy(), ref[1])
            np.testing.assert_array_equal(out[0].numpy(), ref[0])
        results[assign] = ref
    assert not np.array_equal(results['center'][0], results['parent'][0])  # the switch is not a no-op here
    for assign in ASSIGN:  # the dense form implements the same switch
        out = dpc_knn_dense(x, 3, k=3, assign=assign)
        np.testing.assert_array_equal(out[0].numpy(), results[assign][0])


@pytest.mark.parametrize('kind,seed', [('gauss', 0), ('duplicates', 3), ('grid', 5), ('grid', 6)])
def test_densest_delta_row_or_global_max_is_the_same(kind, seed):
    """Paper Eq. 2 (row max) and TCFormer's code (global max) give the densest token different deltas but the
    same result: the densest token is the first centre either way (docs/clustr.md). Shown on the reference
    alone, then the module's first centre is the reference's densest token."""
    x = _case(kind, seed)
    for M in (1, 4, 9):
        row = slow_dpc(x.numpy(), M, 3, densest_delta='row')
        glob = slow_dpc(x.numpy(), M, 3, densest_delta='global')
        np.testing.assert_array_equal(row[0], glob[0])
        np.testing.assert_array_equal(row[1], glob[1])
    d2 = ((x[:, :, None] - x[:, None]) ** 2).sum(-1)
    expo = torch.sort(d2, dim=-1).values[..., :3].mean(-1)  # -log rho * C, k = 3
    densest = [min(range(x.shape[1]), key=lambda i: (float(expo[b, i]), i)) for b in range(x.shape[0])]
    assert dpc_knn(x, 4, k=3)[1][:, 0].tolist() == densest


def test_dist_scale_false_and_no_underflow():
    # C = 4: scaling x by sqrt(C) = 2 is exact, so dist_scale=False on x equals dist_scale=True on 2x
    x = _case('gauss', 8, N=20, C=4)
    a = dpc_knn(x, 6, dist_scale=False)
    b = dpc_knn(2 * x, 6, dist_scale=True)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    ref_idx, ref_cen = slow_dpc(x.numpy(), 6, dist_scale=False)
    np.testing.assert_array_equal(a[1].numpy(), ref_cen)
    # features so large that exp(-mean d^2) underflows even in float64: the log-space ordering still works
    big = 40 * x
    ref_idx, ref_cen = slow_dpc(big.numpy(), 6, dist_scale=False, log_space=True)
    for dtype in (torch.float32, torch.float64):
        idx, cen = dpc_knn(big.to(dtype), 6, dist_scale=False)
        np.testing.assert_array_equal(cen.numpy(), ref_cen)
        np.testing.assert_array_equal(idx.numpy(), ref_idx)


def loop_dpc(x, M, k=5, assign='center'):
    """The equations of :func:`slow_dpc` in float64 with a loop over tokens (numpy rows) for larger N."""
    x = np.asarray(x, dtype=np.float64)
    B, N, C = x.shape
    idx_all, cen_all = np.zeros((B, N), np.int64), np.zeros((B, M), np.int64)
    for b in range(B):
        d2 = np.stack([((x[b] - x[b, i])**2).sum(-1) for i in range(N)]) / C
        expo = np.array([np.sort(d2[i])[:min(k, N)].mean() for i in range(N)])
        rank = np.empty(N, np.int64)
        rank[sorted(range(N), key=lambda i: (expo[i], i))] = np.arange(N)
        score, parent = np.empty(N), np.full(N, -1)
        for i in range(N):
            denser = np.nonzero(rank < rank[i])[0]
            if denser.size == 0:  # the densest token: delta = its row max (paper Eq. 2)
                score[i] = -expo[i] + 0.5 * np.log(d2[i].max()) if d2[i].max() > 0 else -np.inf
                continue
            j = denser[np.argmin(d2[i, denser])]  # argmin: first (lowest index) of equal distances
            parent[i] = j
            score[i] = -expo[i] + 0.5 * np.log(d2[i, j]) if d2[i, j] > 0 else -np.inf
        centres = sorted(range(N), key=lambda i: (-score[i], i))[:M]
        near = np.argmin(d2[centres], axis=0)  # first (lowest rank) of equal distances
        for i in range(N):
            j = i
            if assign == 'parent':
                while j not in centres and parent[j] >= 0:
                    j = parent[j]
            idx_all[b, i] = centres.index(j) if j in centres else near[j]
        cen_all[b] = centres
    return idx_all, cen_all


def test_larger_n_against_loop_reference_and_chunk_invariance(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 300, 16, generator=g, dtype=torch.float64)
    for assign in ASSIGN:
        ref_idx, ref_cen = loop_dpc(x.numpy(), 40, assign=assign)
        for out in [dpc_knn(x, 40, assign=assign, chunk_size=c) for c in (None, 17)] + \
                [dpc_knn_dense(x, 40, assign=assign)]:
            np.testing.assert_array_equal(out[1].numpy(), ref_cen)
            np.testing.assert_array_equal(out[0].numpy(), ref_idx)
    # float32: neither the chunk size nor the block size of the exact recomputation changes the result
    x32 = x.float()
    first = dpc_knn(x32, 40)
    for chunk in (1, 17, 64, 299, 300, 1000):
        out = dpc_knn(x32, 40, chunk_size=chunk)
        assert torch.equal(out[0], first[0]) and torch.equal(out[1], first[1]), chunk
    monkeypatch.setattr(dpc_mod, '_EXACT_ELEMS', 1000)  # a few rows per block
    out = dpc_knn(x32, 40)
    assert torch.equal(out[0], first[0]) and torch.equal(out[1], first[1])


@pytest.mark.parametrize('n,k', [(300, 16), (3136, 16), (3136, 4), (1001, 5), (40, 16), (197, 4)])
def test_k_smallest_selects_the_same_values_as_topk(n, k):
    g = torch.Generator().manual_seed(n + k)
    rows = [torch.randn(3, 7, n, generator=g),
            torch.randint(0, 5, (3, 7, n), generator=g).float(),  # many ties at the k-th value
            torch.randn(3, 7, n, generator=g).masked_fill(torch.rand(3, 7, n, generator=g) < 0.9, float('inf'))]
    rows[0][:, :, 0] = -float('inf')  # the self entry of pass 1
    for d2 in rows:
        values, idx = dpc_mod._k_smallest(d2, k)
        ref = torch.topk(d2, k, dim=-1, largest=False).values
        assert torch.equal(values.sort(-1).values, ref.sort(-1).values)
        assert torch.equal(torch.gather(d2, 2, idx), values)
        assert (idx.sort(-1).values.diff(dim=-1) > 0).all()  # k distinct columns per row


def test_never_materialises_n_by_n(monkeypatch):
    N = 4096
    largest = []

    def spy(orig):
        def wrapped(*args, **kwargs):
            out = orig(*args, **kwargs)
            largest.append(out.numel())
            return out
        return wrapped

    for name in ('_sq_dist', '_row_ranked_d2'):  # every distance block (expansion, or ranked up to a constant)
        monkeypatch.setattr(dpc_mod, name, spy(getattr(dpc_mod, name)))
    x = torch.randn(1, N, 8, generator=torch.Generator().manual_seed(0))
    idx, cen = dpc_knn(x, N // 16)
    assert max(largest) <= dpc_mod._CHUNK_ELEMS < N * N
    assert dpc_mod.default_chunk_size(1, 66_800, 66_800) * 66_800 <= dpc_mod._CHUNK_ELEMS


def test_output_contract():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 50, 8, generator=g)
    for M in (1, 7, 50):
        idx, cen = dpc_knn(x, M)
        assert idx.dtype == torch.long and cen.dtype == torch.long
        assert idx.shape == (3, 50) and cen.shape == (3, M)
        assert int(idx.min()) >= 0 and int(idx.max()) < M
        for b in range(3):
            assert len(set(cen[b].tolist())) == M  # distinct centres
            assert torch.equal(idx[b, cen[b]], torch.arange(M))  # each centre in its own cluster
    assert bool((dpc_knn(x, 1)[0] == 0).all())
    # M = N: every token is a centre
    idx, cen = dpc_knn(x, 50)
    assert torch.equal(torch.sort(cen, dim=1).values, torch.arange(50).expand(3, 50))
    # one token, k larger than N
    idx, cen = dpc_knn(torch.randn(2, 1, 4), 1, k=5)
    assert idx.tolist() == [[0], [0]] and cen.tolist() == [[0], [0]]
    idx, cen = dpc_knn(torch.randn(1, 3, 4), 2, k=10)
    assert idx.shape == (1, 3)


def test_deterministic_and_seed_independent():
    x = _case('duplicates', 9, B=2, N=120, C=8).float()
    torch.manual_seed(0)
    a = dpc_knn(x, 13)
    torch.manual_seed(123)
    b = dpc_knn(x, 13)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_multi_against_reference():
    x = torch.randn(2, 60, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    outs = dpc_knn_multi(x, [7, 20])
    for (idx, cen), M in zip(outs, [7, 20]):
        ref_idx, ref_cen = loop_dpc(x.numpy(), M)
        np.testing.assert_array_equal(cen.numpy(), ref_cen)
        np.testing.assert_array_equal(idx.numpy(), ref_idx)
    assert torch.equal(outs[0][1], outs[1][1][:, :7])  # centres of a smaller M are a prefix


def test_no_grad_low_precision_and_autocast():
    x = torch.randn(2, 64, 8, generator=torch.Generator().manual_seed(3), requires_grad=True)
    idx, cen = dpc_knn(x, 8)
    assert not idx.requires_grad
    ref = dpc_knn(x.detach().bfloat16().float(), 8)
    out = dpc_knn(x.detach().bfloat16(), 8)  # computed in float32 internally
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = dpc_knn(x.detach(), 8)
    assert torch.equal(out[1], dpc_knn(x.detach(), 8)[1])


def test_bad_inputs():
    x = torch.randn(2, 10, 4)
    with pytest.raises(ValueError, match=r'\[B, N, C\]'):
        dpc_knn(torch.randn(10, 4), 2)
    with pytest.raises(ValueError, match='floating'):
        dpc_knn(torch.ones(2, 10, 4, dtype=torch.long), 2)
    for bad in (float('nan'), float('inf')):
        y = x.clone()
        y[1, 3, 2] = bad
        with pytest.raises(ValueError, match='NaN'):
            dpc_knn(y, 2)
    for M in (0, 11, -1, 2.5, True):
        with pytest.raises(ValueError, match='num_clusters'):
            dpc_knn(x, M)
    for k in (0, -3, 1.5):
        with pytest.raises(ValueError, match='k must'):
            dpc_knn(x, 2, k=k)
    with pytest.raises(ValueError, match='chunk_size'):
        dpc_knn(x, 2, chunk_size=0)
    with pytest.raises(ValueError, match=r"assign must be one of \('center', 'parent'\)"):
        dpc_knn(x, 2, assign='nearest')
    with pytest.raises(ValueError, match='token_mask'):
        dpc_knn(x, 2, token_mask=torch.ones(2, 9, dtype=torch.bool))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match='without any valid token'):
        dpc_knn(x, 2, token_mask=mask)
    with pytest.raises(ValueError, match='non-empty'):
        dpc_knn(torch.randn(1, 0, 4), 1)


def slow_merge(x, idx, M, w, eps=1e-6):
    B, N, C = x.shape
    out = torch.zeros(B, M, C, dtype=torch.float64)
    for b in range(B):
        for m in range(M):
            num = torch.zeros(C, dtype=torch.float64)
            den = 0.0
            for i in range(N):
                if idx[b, i] == m:
                    num += w[b, i] * x[b, i]
                    den += float(w[b, i])
            out[b, m] = num / (den + eps)
    return out


def test_merge_tokens_reference_and_gradients():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 9, 3, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 4, (2, 9), generator=g)
    idx[:, :3] = torch.arange(3)  # cluster 3 may be empty
    w = torch.rand(2, 9, generator=g, dtype=torch.float64) + 0.1
    torch.testing.assert_close(merge_tokens(x, idx, 4, w), slow_merge(x, idx, 4, w))
    torch.testing.assert_close(merge_tokens(x, idx, 4, w.unsqueeze(-1)), slow_merge(x, idx, 4, w))
    torch.testing.assert_close(merge_tokens(x, idx, 4), slow_merge(x, idx, 4, torch.ones(2, 9)))
    idx_empty = idx.clone()
    idx_empty[idx_empty == 3] = 0
    assert bool((merge_tokens(x, idx_empty, 4, w)[:, 3] == 0).all())
    xs = x[:, :5].clone().requires_grad_(True)
    ws = w[:, :5].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: merge_tokens(a, idx[:, :5], 4, b), (xs, ws))
    # low precision in, same dtype out (accumulated in float32)
    out = merge_tokens(x.bfloat16(), idx, 4)
    assert out.dtype == torch.bfloat16
    with pytest.raises(ValueError, match='idx_cluster'):
        merge_tokens(x, idx[:, :5], 4)


def test_cluster_softmax_weights():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 12, 3, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 3, (2, 12), generator=g)
    idx[:, :3] = torch.arange(3)
    s = 500 * torch.randn(2, 12, generator=g, dtype=torch.float64)  # exp(s) alone would overflow
    w = cluster_softmax_weights(s, idx, 3)
    assert bool(torch.isfinite(w).all()) and bool((w <= 1).all())
    ref = torch.zeros(2, 3, 3, dtype=torch.float64)
    for b in range(2):
        for m in range(3):
            sel = idx[b] == m
            ref[b, m] = (torch.softmax(s[b, sel], 0).unsqueeze(-1) * x[b, sel]).sum(0)
    torch.testing.assert_close(merge_tokens(x, idx, 3, w), ref, rtol=1e-5, atol=1e-6)
    s_small = torch.randn(2, 12, generator=g, dtype=torch.float64, requires_grad=True)
    merge_tokens(x, idx, 3, cluster_softmax_weights(s_small, idx, 3)).sum().backward()
    assert s_small.grad is not None and bool(s_small.grad.abs().sum() > 0)


# ---------------------------------------------------------------------------------------------------------------
# Parity with TCFormer's official code: stored outputs of ``cluster_dpc_knn`` / ``merge_tokens``
# (zengwang430521/TCFormer, produced by tools/parity/make_dpc_knn_fixture.py, float64).

FIXTURE = Path(__file__).resolve().parents[2] / 'data' / 'fixtures' / 'dpc_knn_tcformer.pt'


@pytest.fixture(scope='module')
def tcformer_cases():
    fixture = torch.load(FIXTURE, weights_only=True)
    assert 'TCFormer' in fixture['source'] and len(fixture['cases']) >= 5
    return fixture['cases']


def test_parity_with_official_cluster_dpc_knn(tcformer_cases):
    """TCFormer's behaviour is the default (``assign='center'``, distances / sqrt(C)); its global-max delta of
    the densest token gives the same result as the row max (see test_densest_delta_row_or_global_max_is_the_same).
    Cluster ids are compared as they are: both number a cluster by its centre's score rank."""
    differs_with_parent = False
    for case in tcformer_cases:
        x, M, k, mask = case['x'], case['cluster_num'], case['k'], case.get('token_mask')
        # padded tokens: TCFormer puts every one in cluster 0, here they join their nearest centre (docs/clustr.md)
        valid = torch.ones_like(case['idx_cluster'], dtype=torch.bool) if mask is None else mask
        if mask is not None:
            assert bool((case['idx_cluster'][~mask] == 0).all())
        for dtype in (torch.float64, torch.float32):
            for chunk in (None, 7):
                idx, cen = dpc_knn(x.to(dtype), M, k=k, token_mask=mask, chunk_size=chunk)
                assert torch.equal(idx[valid], case['idx_cluster'][valid]), (case['name'], dtype, chunk)
        idx_dense, _ = dpc_knn_dense(x, M, k=k, token_mask=mask)
        assert torch.equal(idx_dense[valid], case['idx_cluster'][valid]), case['name']
        idx_parent = dpc_knn(x, M, k=k, token_mask=mask, assign='parent')[0]
        differs_with_parent |= not torch.equal(idx_parent[valid], case['idx_cluster'][valid])
    assert differs_with_parent  # the fixture tells the paper's assignment rule from TCFormer's
    assert any('token_mask' in case for case in tcformer_cases)


def test_parity_with_official_merge_tokens(tcformer_cases):
    for case in tcformer_cases:
        x, idx, M, s = case['x'], case['idx_cluster'], case['cluster_num'], case['score']
        torch.testing.assert_close(merge_tokens(x, idx, M, s.exp()), case['x_merged'], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(merge_tokens(x, idx, M), case['x_merged_unit'], rtol=1e-12, atol=1e-12)
        # ClusTR's overflow-safe weights: the same merge up to the 1e-6 of the denominator
        torch.testing.assert_close(merge_tokens(x, idx, M, cluster_softmax_weights(s, idx, M)), case['x_merged'],
                                   rtol=1e-5, atol=1e-6)
