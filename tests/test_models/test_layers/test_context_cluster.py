"""ContextClusterLayer against a slow reference written from the paper's equations (ICLR 2023, Sec. 3.2, Eq. 1-2)
and the region rule of docs/context_cluster.md; the official code's outputs are compared in
tests/test_tools/test_coc2mmcluster.py (stored fixture)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmcluster.models.layers.context_cluster import ContextClusterLayer, _build_layout
from mmcluster.models.utils.cluster_record import recording_clusters


def _bounds(size, fold):
    # documented region rule: f = min(fold, size) regions, region k = [floor(k*S/f), floor((k+1)*S/f))
    f = min(fold, size)
    return [(k * size // f, (k + 1) * size // f) for k in range(f)]


def slow_reference(layer, x, norm_by):
    """Per batch, head and region, loops over centres and points, float64."""
    x = x.double()
    B, C, H, W = x.shape
    E, d = layer.heads, layer.head_dim
    ph, pw = layer.proposal
    M = ph * pw
    alpha = layer.sim_alpha.double().item()
    beta = layer.sim_beta.double().item()
    xf = F.conv2d(x, layer.f.weight.double(), layer.f.bias.double())
    xv = F.conv2d(x, layer.v.weight.double(), layer.v.bias.double())
    y = torch.zeros(B, E * d, H, W, dtype=torch.float64)
    assign = torch.full((B, E, H, W), -1, dtype=torch.long)
    rows, cols = _bounds(H, layer.fold[0]), _bounds(W, layer.fold[1])
    for b in range(B):
        for e in range(E):
            ch = slice(e * d, (e + 1) * d)
            for ri, (r0, r1) in enumerate(rows):
                for ci, (c0, c1) in enumerate(cols):
                    region = ri * len(cols) + ci
                    fr = xf[b, ch, r0:r1, c0:c1]
                    vr = xv[b, ch, r0:r1, c0:c1]
                    # centres: AdaptiveAvgPool over this region (torch's own op, overlapping bins)
                    cen = F.adaptive_avg_pool2d(fr[None], (ph, pw))[0].reshape(d, M).T  # [M, d]
                    vcen = F.adaptive_avg_pool2d(vr[None], (ph, pw))[0].reshape(d, M).T
                    pts = [(i, j) for i in range(r1 - r0) for j in range(c1 - c0)]
                    s = torch.zeros(M, len(pts), dtype=torch.float64)
                    for m in range(M):
                        for n, (i, j) in enumerate(pts):
                            cos = torch.dot(cen[m], fr[:, i, j]) / (cen[m].norm() * fr[:, i, j].norm())
                            s[m, n] = 1.0 / (1.0 + math.exp(-(beta + alpha * cos.item())))
                    best = [int(torch.argmax(s[:, n])) for n in range(len(pts))]
                    g = torch.zeros(M, d, dtype=torch.float64)
                    for m in range(M):
                        num = vcen[m].clone()
                        den = 1.0
                        for n, (i, j) in enumerate(pts):
                            if best[n] == m:
                                num += s[m, n] * vr[:, i, j]
                                den += s[m, n].item() if norm_by == 'sim' else 1.0
                        g[m] = num / den
                    for n, (i, j) in enumerate(pts):
                        m = best[n]
                        y[b, ch, r0 + i, c0 + j] = s[m, n] * g[m]
                        assign[b, e, r0 + i, c0 + j] = region * M + m
    out = F.conv2d(y, layer.proj.weight.double(), layer.proj.bias.double())
    return out, assign


def _layer(**kw):
    torch.manual_seed(0)
    layer = ContextClusterLayer(**kw)
    with torch.no_grad():  # non-trivial alpha / beta
        layer.sim_alpha.fill_(1.7)
        layer.sim_beta.fill_(-0.3)
    return layer.double()


@pytest.mark.parametrize('norm_by', ['sim', 'mask'])
@pytest.mark.parametrize(
    'size,fold,proposal',
    [
        ((8, 8), 2, 2),  # divisible: equal regions, as the official code
        ((7, 9), 2, 2),  # uneven regions (3/4 rows, 4/5 cols), overlapping pool bins
        ((6, 5), 1, (3, 2)),  # no partition, non-square proposal, overlapping bins
        ((3, 10), 4, 2),  # side shorter than the fold: 3 one-row regions; regions narrower than p
    ])
def test_matches_slow_reference(norm_by, size, fold, proposal):
    layer = _layer(dim=5, heads=2, head_dim=3, proposal=proposal, fold=fold, norm_by=norm_by)
    torch.manual_seed(1)
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    with recording_clusters(layer) as records:
        out = layer(x)
    ref, ref_assign = slow_reference(layer, x, norm_by)
    assert out.shape == x.shape
    (rec, ) = records
    assert rec.kind == 'hard' and rec.spatial_shape == size
    regions = min(layer.fold[0], size[0]) * min(layer.fold[1], size[1])
    assert rec.num_clusters == regions * layer.proposal[0] * layer.proposal[1]
    assert torch.equal(rec.labels(), ref_assign)  # [B, E, H, W] global centre ids
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_norm_by_modes_differ_and_bad_value():
    x = torch.randn(1, 5, 6, 6, dtype=torch.float64)
    a = _layer(dim=5, heads=1, head_dim=4, fold=2, norm_by='sim')(x)
    layer = _layer(dim=5, heads=1, head_dim=4, fold=2, norm_by='mask')
    assert not torch.allclose(a, layer(x))
    with pytest.raises(ValueError, match='norm_by.*bogus'):
        ContextClusterLayer(dim=4, norm_by='bogus')


def test_regions_do_not_interact():
    """A change inside one (uneven) region changes only that region's outputs."""
    layer = _layer(dim=4, heads=2, head_dim=2, fold=2, proposal=2)
    x = torch.randn(1, 4, 7, 9, dtype=torch.float64)
    x2 = x.clone()
    x2[..., 0, 0] += 5.0  # region rows [0,3), cols [0,4)
    diff = (layer(x) - layer(x2)).abs().sum(1)[0]
    assert diff[:3, :4].sum() > 0
    assert diff[3:, :].abs().max() == 0 and diff[:, 4:].abs().max() == 0


def test_records_only_when_asked():
    layer = _layer(dim=4, heads=2, head_dim=2, fold=2, proposal=2)
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    with recording_clusters(layer) as records:
        out = layer(x)
    torch.testing.assert_close(layer(x), out, rtol=0, atol=0)  # recording changes nothing
    (rec, ) = records
    assert rec.assignment.shape == (1, 2, 25) and rec.meta == {'regions': (2, 2), 'proposal': (2, 2)}
    assert rec.name == '' and rec.num_clusters == 16
    layer(x)
    assert len(records) == 1  # nothing recorded outside the block
    assert not hasattr(layer, 'keep_assign') and not hasattr(layer, 'last_assign')


def test_first_call_under_inference_mode_then_training_step():
    """The cached region layout must not be an inference tensor (a later backward would fail)."""
    _build_layout.cache_clear()
    torch.manual_seed(0)
    layer = ContextClusterLayer(dim=6, heads=2, head_dim=3, proposal=2, fold=2)
    x = torch.randn(2, 6, 9, 7)  # uneven regions: the cached layout has a validity mask and per-region pools
    with torch.inference_mode():
        ref = layer(x)
    layer.train()
    xg = x.clone().requires_grad_(True)
    out = layer(xg)
    out.square().sum().backward()  # "Inference tensors cannot be saved for backward" before the fix
    assert xg.grad is not None and layer.f.weight.grad.abs().sum() > 0
    torch.testing.assert_close(out.detach(), ref)


def test_gradients_reach_all_parameters():
    layer = ContextClusterLayer(dim=6, heads=2, head_dim=3, proposal=2, fold=2)
    x = torch.randn(2, 6, 7, 6, requires_grad=True)
    layer(x).square().sum().backward()
    for name in ['sim_alpha', 'sim_beta', 'f.weight', 'f.bias', 'v.weight', 'proj.weight', 'proj.bias']:
        grad = layer.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_bf16_autocast_and_batch1():
    layer = ContextClusterLayer(dim=8, heads=2, head_dim=4, proposal=2, fold=2)
    x = torch.randn(1, 8, 9, 11)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    assert out.shape == x.shape and torch.isfinite(out.float()).all()
