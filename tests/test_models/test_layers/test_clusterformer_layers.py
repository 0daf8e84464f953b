"""ClusterFormer layers against slow float64 loop references written from the paper (NeurIPS 2023).

* recurrent cross-attention clustering: main paper Eqs. 3-5, supplementary Algorithm 1;
* feature dispatch: main paper Eq. 6 (soft), supplementary Algorithm 2 (hard), and the released code's
  Context-Cluster dispatch (Ma et al., ICLR 2023, Eqs. 1-2, point-count denominator);
* the token mixer on real spatial windows (docs/clusterformer.md), any size;
* the released layer (raw-reshape compatibility) against the stored output of the released code
  (tests/data/fixtures/clusterformer_layer.pt, made by tools/parity/make_clusterformer_fixture.py), loaded
  through the converter's key mapping.
"""
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import load_tool
from mmcluster.models.layers.clusterformer_clustering import RecurrentCrossAttentionClustering
from mmcluster.models.layers.clusterformer_cross_attention import RecurrentClusteringCrossAttention
from mmcluster.models.layers.clusterformer_dispatch import FeatureDispatch
from mmcluster.models.layers.clusterformer_mixer import ClusterFormerMixer
from mmcluster.models.utils.cluster_record import recording_clusters

FIXTURES = Path(__file__).resolve().parents[2] / 'data' / 'fixtures'
DT = torch.float64


# ---------------------------------------------------------------------------------------------- references
def ref_pool(grid, ph, pw):
    """AdaptiveAvgPool bins [floor(i S / p), ceil((i + 1) S / p)) by loops: grid [H, W, d] -> [ph*pw, d]."""
    H, W, d = grid.shape
    out = []
    for i in range(ph):
        r0, r1 = (i * H) // ph, -((-(i + 1) * H) // ph)
        for j in range(pw):
            c0, c1 = (j * W) // pw, -((-(j + 1) * W) // pw)
            acc = torch.zeros(d, dtype=DT)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    acc = acc + grid[r, c]
            out.append(acc / ((r1 - r0) * (c1 - c0)))
    return torch.stack(out)


def ref_linear(lin, x):
    return torch.stack([lin.weight.double() @ xi + lin.bias.double() for xi in x])


def ref_rca(layer, c0, keys, values, valid=None, pos=None, mask=None):
    """Algorithm 1, one sample: c0 [M, D], keys [N, E*dq], values [N, D] -> (c_T [M, D], gammas [T][E][M][N]).

    ``pos`` [M, D] is added to the centres before W_Q; ``mask`` [E][M][N] bool excludes pairs (a token excluded
    for every centre is not excluded)."""
    E, dq, dv = layer.num_heads, layer.head_dim, layer.value_dim
    M, N = c0.shape[0], keys.shape[0]
    tau = 1.0 if layer.temperature is None else layer.temperature
    c = c0.clone()
    gammas = []
    for _ in range(layer.num_iters):
        cq = c if pos is None else c + pos
        if layer.share_q:
            q = torch.stack([torch.cat([layer.q_proj.weight.double() @ cq[m, e * dv:(e + 1) * dv]
                                        + layer.q_proj.bias.double() for e in range(E)]) for m in range(M)])
        else:
            q = ref_linear(layer.q_proj, cq)
        new = torch.zeros_like(c)
        g_t = []
        for e in range(E):
            def score(m, n):
                qv, kv = q[m, e * dq:(e + 1) * dq], keys[n, e * dq:(e + 1) * dq]
                if layer.update == 'cosine':
                    return float(torch.dot(qv, kv) / (qv.norm() * kv.norm())) / tau
                return float(torch.dot(qv, kv)) / tau

            logit = [[score(m, n) for n in range(N)] for m in range(M)]
            gamma = [[0.0] * N for _ in range(M)]
            ok = [n for n in range(N) if valid is None or valid[n]]
            if layer.update == 'cross_attn':  # softmax over the tokens, per centre
                for m in range(M):
                    z = sum(math.exp(logit[m][n]) for n in ok)
                    for n in ok:
                        gamma[m][n] = math.exp(logit[m][n]) / z
            for n in ok if layer.update != 'cross_attn' else []:
                allowed = [m for m in range(M) if mask is None or not mask[e][m][n]] or list(range(M))
                if layer.update == 'kmeans':  # one-hot argmax over the clusters (ties: lowest index)
                    gamma[max(allowed, key=lambda m: (logit[m][n], -m))][n] = 1.0
                    continue
                z = sum(math.exp(logit[m][n]) for m in allowed)  # softmax over the clusters
                for m in allowed:
                    gamma[m][n] = math.exp(logit[m][n]) / z
            for m in range(M):
                upd = torch.zeros(dv, dtype=DT)
                for n in range(N):
                    upd = upd + gamma[m][n] * values[n, e * dv:(e + 1) * dv]
                if layer.mass_norm:
                    upd = upd / (sum(gamma[m]) + 1e-6)
                new[m, e * dv:(e + 1) * dv] = c[m, e * dv:(e + 1) * dv] + upd if layer.residual else upd
            g_t.append(gamma)
        c = new
        gammas.append(g_t)
    return c, gammas


def ref_mlp(seq, x):
    h = ref_linear(seq[0], x)
    return ref_linear(seq[2], F.gelu(h))


def ref_dispatch(layer, x, cen, values=None, vcen=None):
    """Eq. 6 / Algorithm 2 / Context-Cluster dispatch for one sample by loops: x [N, d], cen [K, d]."""
    N, K = x.shape[0], cen.shape[0]

    def cos(a, b):
        return float(torch.dot(a, b) / (max(a.norm(), 1e-12) * max(b.norm(), 1e-12)))

    out = []
    if layer.mode == 'soft':
        for n in range(N):
            acc = torch.zeros_like(x[n])
            for k in range(K):
                acc = acc + cos(cen[k], x[n]) * cen[k]
            upd = acc / K
            upd = ref_mlp(layer.mlp, upd[None])[0] if layer.mlp is not None else upd
            out.append(x[n] + upd if layer.residual else upd)
        return torch.stack(out)
    if layer.mode == 'hard':
        for n in range(N):
            sims = [cos(cen[k], x[n]) for k in range(K)]
            best = max(range(K), key=lambda k: (sims[k], -k))
            total = torch.zeros_like(x[n])
            for k in range(K):
                s_hat = sims[k] if k == best else 0.0
                term = s_hat * x[n]
                total = total + (ref_mlp(layer.mlp, term[None])[0] if layer.mlp is not None else term)
            upd = total / K
            out.append(x[n] + upd if layer.residual else upd)
        return torch.stack(out)
    # Context-Cluster dispatch
    a, b = float(layer.sim_alpha), float(layer.sim_beta)
    s = [[1 / (1 + math.exp(-(b + a * cos(cen[k], x[n])))) for n in range(N)] for k in range(K)]
    best = [max(range(K), key=lambda k: (s[k][n], -k)) for n in range(N)]
    g = []
    for k in range(K):
        num, den = vcen[k].clone(), 1.0
        for n in range(N):
            if best[n] == k:
                num = num + s[k][n] * values[n]
                den += 1.0 if layer.norm_by == 'mask' else s[k][n]
        g.append(num / den)
    return torch.stack([s[best[n]][n] * g[best[n]] for n in range(N)])


# ------------------------------------------------------------------------------------------------ clustering
@pytest.mark.parametrize('residual,temperature,heads,share_q', [(True, None, 1, False), (False, None, 2, False),
                                                                (True, 0.7, 2, True), (False, 2.0, 1, True)])
def test_rca_matches_algorithm_1(residual, temperature, heads, share_q):
    torch.manual_seed(0)
    layer = RecurrentCrossAttentionClustering(8, in_dims=6, num_heads=heads, num_iters=3, residual=residual,
                                              temperature=temperature, share_q=share_q).double()
    B, N, M = 2, 12, 4
    feats = torch.randn(B, N, 6, dtype=DT)
    c0 = torch.randn(B, M, 8, dtype=DT)
    with recording_clusters(layer) as records:
        out = layer(feats, hw_shape=(3, 4), centres=c0)
    assert len(records) == 3 and [r.step for r in records] == [0, 1, 2]
    for b in range(B):
        ref, gammas = ref_rca(layer, c0[b], ref_linear(layer.k_proj, feats[b]), ref_linear(layer.v_proj, feats[b]))
        torch.testing.assert_close(out[b], ref, rtol=1e-10, atol=1e-10)
        for t, rec in enumerate(records):
            assert rec.kind == 'soft' and rec.spatial_shape == (3, 4) and rec.num_clusters == M
            got = rec.assignment[b] if heads > 1 else rec.assignment[b][None]  # [E, N, M]
            want = torch.tensor(gammas[t], dtype=DT).transpose(1, 2)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
            # E-step: every token's responsibilities over the clusters sum to one
            torch.testing.assert_close(got.sum(-1), torch.ones_like(got.sum(-1)))


@pytest.mark.parametrize('update', ['kmeans', 'cross_attn', 'cosine'])
def test_rca_centre_update_ablations(update):
    """Table 6c / S1c variants: same parameters, the E-step of each strategy (valid mask included)."""
    torch.manual_seed(8)
    layer = RecurrentCrossAttentionClustering(6, num_heads=2, num_iters=2, update=update, temperature=0.5).double()
    feats, c0 = torch.randn(1, 10, 6, dtype=DT), torch.randn(1, 4, 6, dtype=DT)
    valid = torch.ones(1, 10, dtype=torch.bool)
    valid[0, 3] = False
    out = layer(feats, hw_shape=(2, 5), centres=c0, valid=valid)
    ref, _ = ref_rca(layer, c0[0], ref_linear(layer.k_proj, feats[0]), ref_linear(layer.v_proj, feats[0]),
                     valid=valid[0].tolist())
    torch.testing.assert_close(out[0], ref, rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for p in layer.parameters()) == sum(
        p.numel() for p in RecurrentCrossAttentionClustering(6, num_heads=2).parameters())


def test_rca_pooled_init_ffn_and_valid_mask():
    torch.manual_seed(1)
    layer = RecurrentCrossAttentionClustering(4, num_heads=2, num_iters=2, num_centers=(2, 3),
                                              center_ffn=True, ffn_ratio=2).double()
    H, W = 5, 7
    feats = torch.randn(1, H * W, 4, dtype=DT)
    valid = torch.rand(1, H * W) > 0.3
    out = layer(feats, hw_shape=(H, W), valid=valid)
    c0 = ref_mlp(layer.center_ffn, ref_pool(feats[0].view(H, W, 4), 2, 3))  # Eq. 5
    ref, _ = ref_rca(layer, c0, ref_linear(layer.k_proj, feats[0]), ref_linear(layer.v_proj, feats[0]),
                     valid=valid[0].tolist())
    torch.testing.assert_close(out[0], ref, rtol=1e-10, atol=1e-10)


def test_rca_warns_once_when_pooled_centres_must_repeat(monkeypatch):
    """A 1x1 map pooled to 4 centres gives 4 equal centres: a warning names the sizes, once per module."""
    import importlib
    module = importlib.import_module('mmcluster.models.layers.clusterformer_clustering')
    logged = []
    monkeypatch.setattr(module, 'print_log', lambda msg, **kwargs: logged.append((msg, kwargs.get('level'))))
    layer = RecurrentCrossAttentionClustering(4, num_heads=2, num_iters=1, num_centers=(2, 2))
    layer(torch.randn(1, 4 * 4, 4), hw_shape=(4, 4))  # 16 tokens for 4 centres: no warning
    assert logged == []
    centres = layer.init_centres(torch.randn(2, 1, 4), (1, 1))
    assert torch.equal(centres[:, :1].expand_as(centres), centres)  # what the warning is about
    layer(torch.randn(1, 1, 4), hw_shape=(1, 1))
    assert len(logged) == 1 and '4 centres pooled from a 1x1 map' in logged[0][0]
    assert logged[0][1] == logging.WARNING


def test_rca_t0_gradients_and_errors():
    torch.manual_seed(2)
    layer = RecurrentCrossAttentionClustering(4, num_iters=0, num_centers=2).double()
    feats = torch.randn(1, 16, 4, dtype=DT)
    torch.testing.assert_close(layer(feats, (4, 4)), ref_pool(feats[0].view(4, 4, 4), 2, 2)[None])
    layer = RecurrentCrossAttentionClustering(4, num_heads=2, num_iters=3, num_centers=2).double()
    feats.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: layer(f, (4, 4)), (feats, ))
    # T adds no parameters: the projections are shared across the iterations
    n1 = sum(p.numel() for p in RecurrentCrossAttentionClustering(8, num_iters=1).parameters())
    n4 = sum(p.numel() for p in RecurrentCrossAttentionClustering(8, num_iters=4).parameters())
    assert n1 == n4
    with pytest.raises(ValueError, match='hw_shape'):
        layer(feats)
    with pytest.raises(ValueError, match='divisible'):
        RecurrentCrossAttentionClustering(6, num_heads=4)
    with pytest.raises(ValueError, match='temperature'):
        RecurrentCrossAttentionClustering(4, temperature=0.)
    with pytest.raises(ValueError, match="update must be one of \\('rca', 'kmeans'"):
        RecurrentCrossAttentionClustering(4, update='criss_cross')


@pytest.mark.parametrize('residual,mass_norm', [(True, False), (False, True)])
def test_decoder_cross_attention_matches_algorithm_1_with_positions_and_masks(residual, mass_norm):
    """Queries = centres, softmax over the queries, Mask2Former positions and attention mask."""
    torch.manual_seed(7)
    attn = RecurrentClusteringCrossAttention(8, num_heads=2, num_iters=3, residual=residual,
                                             mass_norm=mass_norm).double()
    B, Q, N = 2, 5, 12
    query, qpos = torch.randn(B, Q, 8, dtype=DT), torch.randn(B, Q, 8, dtype=DT)
    key, kpos = torch.randn(B, N, 8, dtype=DT), torch.randn(B, N, 8, dtype=DT)
    mask = torch.rand(B * 2, Q, N) > 0.6
    mask[:, :, 0] = True  # a pixel masked for every query: unmasked
    with recording_clusters(attn) as records:
        out = attn(query, key, key, query_pos=qpos, key_pos=kpos, attn_mask=mask, key_hw=(3, 4))
    rca = attn.clustering
    for b in range(B):
        ref, gammas = ref_rca(rca, query[b], ref_linear(rca.k_proj, key[b] + kpos[b]), ref_linear(rca.v_proj, key[b]),
                              pos=qpos[b], mask=mask.view(B, 2, Q, N)[b].tolist())
        want = ref if residual else query[b] + ref
        torch.testing.assert_close(out[b], want, rtol=1e-10, atol=1e-10)
    assert [r.step for r in records] == [0, 1, 2] and records[0].labels().shape == (B, 2, 3, 4)
    # a pixel's responsibilities go only to the queries allowed to see it
    gamma = records[0].assignment.view(B, 2, N, Q)
    allowed = ~mask.view(B, 2, Q, N).transpose(2, 3)
    allowed[:, :, 0] = True
    assert (gamma[~allowed] == 0).all()


# -------------------------------------------------------------------------------------------------- dispatch
@pytest.mark.parametrize('mode,kw', [('soft', {}), ('soft', dict(mlp=False, residual=False)), ('hard', {}),
                                     ('hard', dict(mlp=False)), ('coc', dict(norm_by='mask')),
                                     ('coc', dict(norm_by='sim'))])
def test_dispatch_matches_paper(mode, kw):
    torch.manual_seed(3)
    layer = FeatureDispatch(6, mode=mode, mlp_ratio=2, **kw).double()
    if mode == 'coc':
        with torch.no_grad():
            layer.sim_alpha.fill_(1.5)
            layer.sim_beta.fill_(-0.2)
    B, N, K = 2, 10, 3
    x = torch.randn(B, N, 6, dtype=DT)
    cen = torch.randn(B, K, 6, dtype=DT)
    vals = torch.randn(B, N, 6, dtype=DT)
    vcen = torch.randn(B, K, 6, dtype=DT)
    with recording_clusters(layer) as records:
        out = layer(x, cen, vals, vcen, spatial_shape=(2, 5))
    for b in range(B):
        torch.testing.assert_close(out[b], ref_dispatch(layer, x[b], cen[b], vals[b], vcen[b]),
                                   rtol=1e-10, atol=1e-10)
    assert len(records) == 1 and records[0].kind == ('soft' if mode == 'soft' else 'hard')
    assert records[0].labels().shape == (B, 2, 5)


def test_dispatch_hard_zero_terms_switch():
    torch.manual_seed(4)
    lit = FeatureDispatch(4, mode='hard').double()
    drop = FeatureDispatch(4, mode='hard', zero_terms=False).double()
    drop.load_state_dict(lit.state_dict())
    x, cen = torch.randn(1, 5, 4, dtype=DT), torch.randn(1, 3, 4, dtype=DT)
    # the two readings differ by (K - 1) MLP(0) / K exactly
    mlp0 = ref_mlp(lit.mlp, torch.zeros(1, 4, dtype=DT))[0]
    torch.testing.assert_close(lit(x, cen) - drop(x, cen), (2 * mlp0 / 3).expand(1, 5, 4))
    with pytest.raises(ValueError, match="mode must be one of"):
        FeatureDispatch(4, mode='argmax')


# ----------------------------------------------------------------------------------------------------- mixer
def _bounds(size, ws):
    f = -(-size // ws)
    f = min(f, size)
    return [(k * size // f, (k + 1) * size // f) for k in range(f)]


def ref_mixer(mixer, x):
    """Real spatial windows of at most window_size (documented split), per window and head, by loops."""
    x = x.double()
    B, C, H, W = x.shape
    E, d = mixer.heads, mixer.head_dim
    ph, pw = mixer.num_centers
    rca, disp = mixer.clustering, mixer.dispatch
    out = torch.zeros(B, H, W, E * d, dtype=DT)
    for b in range(B):
        pts = x[b].permute(1, 2, 0)  # [H, W, C]
        for r0, r1 in _bounds(H, mixer.window_size[0]):
            for c0_, c1 in _bounds(W, mixer.window_size[1]):
                win = pts[r0:r1, c0_:c1].reshape(-1, C)
                xs = ref_linear(mixer.sim_proj, win)
                k = ref_linear(rca.k_proj, win)
                v = ref_linear(rca.v_proj, win)
                hh, ww = r1 - r0, c1 - c0_
                cen0 = ref_pool(xs.view(hh, ww, E * d), ph, pw)
                cen, _ = ref_rca(rca, cen0, k, v)
                vcen = ref_pool(v.view(hh, ww, E * d), ph, pw)
                ys = []
                for e in range(E):
                    sl = slice(e * d, (e + 1) * d)
                    ys.append(ref_dispatch(disp, xs[:, sl], cen[:, sl], v[:, sl], vcen[:, sl]))
                out[b, r0:r1, c0_:c1] = torch.cat(ys, dim=1).view(hh, ww, E * d)
    y = ref_linear(mixer.out_proj, out.reshape(-1, E * d)).view(B, H, W, C)
    return y.permute(0, 3, 1, 2)


@pytest.mark.parametrize('size,dispatch,share_q', [((8, 8), 'soft', False), ((7, 10), 'coc', True),
                                                    ((5, 3), 'hard', False)])
def test_mixer_windows_match_reference(size, dispatch, share_q):
    torch.manual_seed(5)
    mixer = ClusterFormerMixer(6, heads=2, head_dim=3, num_centers=(2, 3), window_size=4, num_iters=2,
                               dispatch=dispatch, share_q=share_q).double()
    x = torch.randn(2, 6, *size, dtype=DT)
    with recording_clusters(mixer) as records:
        y = mixer(x)
    torch.testing.assert_close(y, ref_mixer(mixer, x), rtol=1e-9, atol=1e-10)
    steps = [r.step for r in records if r.name == 'clustering']
    assert steps == [0, 1]
    rec = records[0]
    assert rec.kind == 'soft' and rec.assignment.shape == (2, 2, size[0] * size[1], 6)
    assert rec.labels().shape == (2, 2, *size)


def test_mixer_batch_one_odd_sizes_and_gradients():
    torch.manual_seed(6)
    mixer = ClusterFormerMixer(4, heads=1, head_dim=4, num_centers=3, window_size=5, num_iters=3).double()
    for size in [(1, 1), (1, 9), (11, 2)]:
        x = torch.randn(1, 4, *size, dtype=DT, requires_grad=True)
        y = mixer(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.autograd.gradcheck(mixer, (torch.randn(1, 4, 6, 7, dtype=DT, requires_grad=True), ))


def test_released_layer_parity():
    """The released ``Clustering`` (0c384d2) output, with its weights through the converter mapping."""
    fx = torch.load(FIXTURES / 'clusterformer_layer.pt', weights_only=True)
    cfg = fx['config']
    conv = load_tool('tools/model_converters/clusterformer2mmcluster.py')
    prefix = 'network.0.0.token_mixer.'
    sd, dropped = conv.convert({prefix + k: v for k, v in fx['state_dict'].items()})
    assert not dropped
    sd = {k[len('backbone.' + prefix):]: v for k, v in sd.items()}
    mixer = ClusterFormerMixer(cfg['dim'], heads=cfg['heads'], head_dim=cfg['head_dim'],
                               num_centers=(cfg['center_w'], cfg['center_h']),
                               windows=(cfg['window_w'], cfg['window_h']), num_iters=cfg['num_clustering'],
                               compat=True).double().eval()
    mixer.load_state_dict(sd, strict=True)
    y = mixer(fx['input'])
    assert (y - fx['output']).abs().max().item() < 1e-12
    # the paper semantics (residual M-step, spatial windows) differ from the release: the switch matters
    paper = ClusterFormerMixer(cfg['dim'], heads=cfg['heads'], head_dim=cfg['head_dim'], num_centers=(3, 2),
                               window_size=4, num_iters=3, share_q=True, dispatch='coc').double()
    paper.load_state_dict(sd, strict=True)
    assert (paper(fx['input']) - fx['output']).abs().max().item() > 1e-3
    with pytest.raises(ValueError, match='divisible'):
        mixer(fx['input'][..., :11])
