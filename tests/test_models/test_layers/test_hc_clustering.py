"""HCFormer clustering (Eq. 3, local 3x3 candidates) and decoding (Eq. 5) against slow loop references written
from the paper's equations, in float64 (odd sizes, border candidates, row sums, gradients, hard limit), against
the official code's outputs (``tests/data/fixtures/hcformer_parity.pt``, made by
``tools/parity/make_hcformer_fixture.py``; weights loaded through the converter), and the cluster records."""
import importlib
import math

import pytest
import torch
from conftest import REPO, load_tool

from mmcluster.models.layers import HCClustering, hc_decode, hc_decode_hierarchy
from mmcluster.models.layers.hc_decode import HC_OFFSETS, hc_candidate_valid, hc_partitions
from mmcluster.models.utils.cluster_record import recording_clusters

hc_decode_module = importlib.import_module('mmcluster.models.layers.hc_decode')  # the package exports the function
FIXTURE = REPO / 'tests' / 'data' / 'fixtures' / 'hcformer_parity.pt'

SIZES = [(6, 8), (5, 7), (1, 1), (3, 2), (7, 1), (2, 9)]


def slow_embed(x, norm, proj):
    """Per pixel: LayerNorm over channels, W v (no bias), divide by the norm."""
    b, c, h, w = x.shape
    weight = proj.weight[:, :, 0, 0]
    out = x.new_zeros(b, weight.shape[0], h, w)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                v = x[n, :, i, j]
                v = (v - v.mean()) / torch.sqrt(v.var(unbiased=False) + norm.eps) * norm.weight + norm.bias
                e = weight @ v
                out[n, :, i, j] = e / e.norm().clamp_min(1e-12)
    return out


def slow_similarities(mod, fine, coarse):
    """{(n, i, j): {k: <f_p, c_{q(p)+o_k}>}} over the candidates on the map, from the slow embeddings."""
    f = slow_embed(fine, mod.fine_norm, mod.fine_emb)
    c = slow_embed(coarse, mod.coarse_norm, mod.coarse_emb)
    b, _, h, w = fine.shape
    hc, wc = coarse.shape[-2:]
    sims = {}
    for n in range(b):
        for i in range(h):
            for j in range(w):
                sims[n, i, j] = {k: torch.dot(f[n, :, i, j], c[n, :, i // 2 + dy, j // 2 + dx])
                                 for k, (dy, dx) in enumerate(HC_OFFSETS)
                                 if 0 <= i // 2 + dy < hc and 0 <= j // 2 + dx < wc}
    return sims


def slow_assign(mod, fine, coarse):
    """A_kp = exp(<f_p, c_{q(p)+o_k}> / |s|) / sum over the valid candidates; 0 for candidates off the map."""
    b, _, h, w = fine.shape
    t = mod.scale.abs() + mod.eps
    out = fine.new_zeros(b, 9, h, w)
    for (n, i, j), sims in slow_similarities(mod, fine, coarse).items():
        logits = {k: v / t for k, v in sims.items()}
        m = max(v.item() for v in logits.values())
        z = sum(torch.exp(v - m) for v in logits.values())
        for k, v in logits.items():
            out[n, k, i, j] = torch.exp(v - m) / z
    return out


def slow_decode(x, assign):
    """y_p = sum_k A_kp x_{q(p) + o_k}, x = 0 off the map."""
    b, ch, hc, wc = x.shape
    h, w = assign.shape[-2:]
    out = x.new_zeros(b, ch, h, w)
    for i in range(h):
        for j in range(w):
            for k, (dy, dx) in enumerate(HC_OFFSETS):
                y, xx = i // 2 + dy, j // 2 + dx
                if 0 <= y < hc and 0 <= xx < wc:
                    out[:, :, i, j] += assign[:, k, i, j, None] * x[:, :, y, xx]
    return out


def make(size, cf=6, cc=10, b=2, dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    h, w = size
    mod = HCClustering(cf, cc, embed_dims=5, **kwargs).to(dtype)
    with torch.no_grad():  # non-trivial LN affine parameters
        for norm in (mod.fine_norm, mod.coarse_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.1)
    fine = torch.randn(b, cf, h, w, dtype=dtype)
    coarse = torch.randn(b, cc, math.ceil(h / 2), math.ceil(w / 2), dtype=dtype)
    return mod, fine, coarse


@pytest.mark.parametrize('size', SIZES)
def test_clustering_matches_slow_reference(size):
    mod, fine, coarse = make(size)
    with torch.no_grad():
        mod.scale.fill_(-0.3)  # |s| is used
        out = mod(fine, coarse)
        ref = slow_assign(mod, fine, coarse)
    assert out.shape == (2, 9) + size
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('size', [(6, 8), (5, 7)])
def test_clustering_gradients_match_slow_reference(size):
    """Gradients of every input and parameter (the hand-written backwards of the folded projection, the channel
    moments and the local correlation) against autograd through the slow reference, float64."""
    mod, fine, coarse = make(size)
    fine.requires_grad_(True)
    coarse.requires_grad_(True)
    leaves = [fine, coarse, *mod.parameters()]
    weight = torch.randn(2, 9, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad((mod(fine, coarse) * weight).sum(), leaves, allow_unused=True)
    ref = torch.autograd.grad((slow_assign(mod, fine, coarse) * weight).sum(), leaves, allow_unused=True)
    for name, a, r in zip(['fine', 'coarse'] + [n for n, _ in mod.named_parameters()], ours, ref):
        assert r is not None and a is not None, name
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize('size', [(9, 11), (8, 8), (1, 5)])
def test_rows_sum_to_one_and_off_map_candidates_get_zero(size):
    mod, fine, coarse = make(size, dtype=torch.float32)
    a = mod(fine, coarse)
    torch.testing.assert_close(a.sum(1), torch.ones(2, *size))
    valid = hc_candidate_valid(*size)
    assert (a[:, ~valid] == 0).all()  # exactly zero, not just small
    assert (a[:, valid] > 0).all()
    # e.g. the top-left pixel has only the candidates (0, 0), (0, +1), (+1, 0), (+1, +1) -> k = 4, 5, 7, 8
    assert valid[:, 0, 0].nonzero().flatten().tolist() == ([4, 5, 7, 8] if min(size) > 2 else
                                                          valid[:, 0, 0].nonzero().flatten().tolist())


def test_folded_layernorm_matches_layernorm_in_float32():
    """The embedding folds LN into the projection (E[x^2] - E[x]^2 statistics): compare with LN + conv in
    float32 on features with a DC offset ten times their spread."""
    mod, fine, _ = make((16, 12), cf=64, dtype=torch.float32)
    x = 10.0 + fine
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (64, ), mod.fine_norm.weight, mod.fine_norm.bias,
                                         mod.fine_norm.eps)
    ref = torch.nn.functional.normalize(ref @ mod.fine_emb.weight.flatten(1).t(), dim=-1).permute(0, 3, 1, 2)
    torch.testing.assert_close(mod._embed(x, mod.fine_norm, mod.fine_emb), ref, rtol=0, atol=2e-5)


def test_gradients_reach_scale_projections_and_inputs():
    mod, fine, coarse = make((7, 6), dtype=torch.float32)
    fine.requires_grad_(True)
    coarse.requires_grad_(True)
    a = mod(fine, coarse)
    x = torch.randn(2, 3, 4, 3)
    hc_decode(x, a).square().sum().backward()
    for name, p in mod.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert fine.grad.abs().sum() > 0 and coarse.grad.abs().sum() > 0


def slow_hard_parents(mod, fine, coarse):
    """[B, H, W] flat index qy * Wc + qx of each pixel's most similar candidate cell (slow reference)."""
    b, _, h, w = fine.shape
    wc = coarse.shape[-1]
    out = torch.zeros(b, h, w, dtype=torch.long)
    for (n, i, j), sims in slow_similarities(mod, fine, coarse).items():
        k = max(sims, key=lambda key: sims[key].item())
        dy, dx = HC_OFFSETS[k]
        out[n, i, j] = (i // 2 + dy) * wc + (j // 2 + dx)
    return out


def test_hard_assignment_limit():
    """As s -> 0 the assignment becomes one-hot on the most similar candidate (Eq. 2), sharpening monotonically."""
    mod, fine, coarse = make((7, 9), dtype=torch.float64)
    parents = slow_hard_parents(mod, fine, coarse)
    hc, wc = coarse.shape[-2:]
    qy = (torch.arange(7) // 2).view(1, 7, 1)
    qx = (torch.arange(9) // 2).view(1, 1, 9)
    k = 3 * (parents // wc - qy + 1) + (parents % wc - qx + 1)  # candidate index of the slow arg-max
    hard = torch.nn.functional.one_hot(k, 9).permute(0, 3, 1, 2).double()
    errs = []
    with torch.no_grad():
        for s in (1.0, 0.1, 0.01, 1e-9):
            mod.scale.fill_(s)
            errs.append((mod(fine, coarse) - hard).abs().max().item())
    assert errs[-1] < 1e-6 and errs[0] > errs[1] > errs[2] > errs[3]


def test_cluster_records_hard_parent_cells():
    """The record is the arg-max candidate mapped to the coarse index (slow reference), on the fine grid."""
    mod, fine, coarse = make((7, 9), dtype=torch.float64)
    with torch.no_grad(), recording_clusters(mod) as records:
        mod(fine, coarse)
    assert len(records) == 1
    rec = records[0]
    assert (rec.kind, rec.spatial_shape, rec.cluster_shape, rec.num_clusters) == ('hard', (7, 9), (4, 5), 20)
    assert rec.parent is None and rec.meta['scale'] == pytest.approx(0.1)
    torch.testing.assert_close(rec.labels(), slow_hard_parents(mod, fine, coarse), rtol=0, atol=0)
    with torch.no_grad():
        mod(fine, coarse)
    assert len(records) == 1  # nothing recorded outside the context


def test_matches_official_clustering_and_decoding():
    """Stored outputs of the official ``Clustering`` and ``upsampling`` (float64); weights via the converter."""
    fixture = torch.load(FIXTURE, weights_only=True)
    conv = load_tool('tools/model_converters/hcformer2mmcluster.py')
    case = fixture['clustering']
    mod = HCClustering(6, 10, embed_dims=5).double()
    mod.load_state_dict(conv.convert_clustering(case['state_dict']), strict=True)
    assert mod.scale.item() == pytest.approx(-0.3)
    with torch.no_grad():
        torch.testing.assert_close(mod(case['fine'], case['coarse']), case['assign'], rtol=1e-10, atol=1e-12)
    case = fixture['decode']
    torch.testing.assert_close(hc_decode_hierarchy(case['preds'], case['assigns']), case['out'], rtol=1e-12,
                               atol=1e-12)


def test_shape_and_channel_errors():
    mod = HCClustering(4, 8, embed_dims=3)
    with pytest.raises(ValueError, match='coarse map of size'):
        mod(torch.randn(1, 4, 8, 8), torch.randn(1, 8, 3, 4))
    with pytest.raises(ValueError, match='coarse map of size'):
        mod(torch.randn(1, 4, 7, 7), torch.randn(1, 8, 3, 3))  # floor instead of ceil
    with pytest.raises(ValueError, match='channels'):
        mod(torch.randn(1, 5, 8, 8), torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match='channels'):
        mod(torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4))
    with pytest.raises(ValueError, match='batch'):
        mod(torch.randn(2, 4, 8, 8), torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match='coarse map'):
        hc_decode(torch.randn(1, 3, 4, 4), torch.randn(1, 9, 9, 9))
    with pytest.raises(ValueError, match=r'\[B, 9, H, W\]'):
        hc_decode(torch.randn(1, 3, 4, 4), torch.randn(1, 8, 8, 8))


@pytest.fixture(params=['sparse', 'blocked'])
def decode_path(request, monkeypatch):
    """Both implementations of Eq. 5: MKL's CSR products (eager, CPU) and the blocked dense form (CUDA,
    tracing, export, compile), selected by :func:`hc_decode`'s ``_sparse_path``."""
    if request.param == 'sparse' and not hc_decode_module._sparse_path(torch.zeros(1)):
        pytest.skip('no MKL: the sparse path does not run here')
    if request.param == 'blocked':
        monkeypatch.setattr(hc_decode_module, '_sparse_path', lambda x: False)
    return request.param


@pytest.mark.parametrize('size', SIZES)
def test_decode_matches_slow_reference(size, decode_path):
    torch.manual_seed(1)
    h, w = size
    x = torch.randn(2, 3, math.ceil(h / 2), math.ceil(w / 2), dtype=torch.float64)
    a = torch.rand(2, 9, h, w, dtype=torch.float64)  # any weights, also on off-map candidates
    out = hc_decode(x, a)
    torch.testing.assert_close(out, slow_decode(x, a), rtol=1e-12, atol=1e-12)
    layout = torch.channels_last if decode_path == 'sparse' else torch.contiguous_format
    assert out.is_contiguous(memory_format=layout)
    # a channels-last input (the hierarchy decodes the sparse path's outputs again) gives the same values
    x_last = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(hc_decode(x_last, a), slow_decode(x, a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('grad_layout', [torch.contiguous_format, torch.channels_last, 'strided'])
def test_decode_gradients_agree_between_paths(grad_layout, monkeypatch):
    """The sparse path's hand-written backward (transposed product, sampled product) against the blocked
    path's, for any layout of the incoming gradient; off-map candidates get gradient 0 on both."""
    if not hc_decode_module._sparse_path(torch.zeros(1)):
        pytest.skip('no MKL: the sparse path does not run here')
    torch.manual_seed(4)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    a = torch.rand(2, 9, 7, 9, dtype=torch.float64, requires_grad=True)
    if grad_layout == 'strided':
        grad = torch.randn(2, 3, 7, 12, dtype=torch.float64)[..., 1:10]
    else:
        grad = torch.randn(2, 3, 7, 9, dtype=torch.float64).contiguous(memory_format=grad_layout)
    sparse = torch.autograd.grad(hc_decode(x, a), (x, a), grad)
    monkeypatch.setattr(hc_decode_module, '_sparse_path', lambda x: False)
    blocked = torch.autograd.grad(hc_decode(x, a), (x, a), grad)
    for s, b in zip(sparse, blocked):
        torch.testing.assert_close(s, b, rtol=1e-12, atol=1e-12)
    off_map = ~hc_candidate_valid(7, 9)
    assert sparse[1][:, off_map].abs().max() == 0 and off_map.any()


@pytest.mark.parametrize('batch, channels', [(1, 0), (0, 3)], ids=['no-masks', 'empty-batch'])
def test_decode_empty_inputs(batch, channels, decode_path):
    """No masks (e.g. no queries left) or an empty batch: empty outputs and zero gradients, no error."""
    x = torch.randn(batch, channels, 3, 4, dtype=torch.float64, requires_grad=True)
    a = torch.rand(batch, 9, 6, 7, dtype=torch.float64, requires_grad=True)
    out = hc_decode(x, a)
    assert out.shape == (batch, channels, 6, 7)
    out.sum().backward()
    assert x.grad.shape == x.shape and a.grad.shape == a.shape and not a.grad.any()


def test_decode_gradcheck_and_nearest_limit(decode_path):
    torch.manual_seed(2)
    x = torch.randn(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    a = torch.rand(1, 9, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(hc_decode, (x, a))
    # all weight on the parent cell == nearest-neighbour 2x upsampling (cropped)
    parent = torch.zeros(1, 9, 5, 3, dtype=torch.float64)
    parent[:, 4] = 1
    up = x.detach().repeat_interleave(2, 2).repeat_interleave(2, 3)[:, :, :5, :3]
    torch.testing.assert_close(hc_decode(x.detach(), parent), up)


def test_decode_hierarchy_and_hard_labels():
    torch.manual_seed(3)
    sizes = [(3, 4), (5, 7), (10, 13)]  # coarse-to-fine fine-map sizes: 2x2 -> 3x4 -> 5x7 -> 10x13
    assigns = [torch.randn(1, 9, *s).masked_fill(~hc_candidate_valid(*s), -1e9).softmax(1) for s in sizes]
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64)
    assigns = [a.double() for a in assigns]
    out = hc_decode_hierarchy(x, assigns)
    ref = slow_decode(slow_decode(slow_decode(x, assigns[0]), assigns[1]), assigns[2])  # Eq. 5 level by level
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r'assigns\[1\]'):
        hc_decode_hierarchy(x, [assigns[0], assigns[2]])
    # hard partitions: decoding one-hot cluster indicators with hard assignments (slow Eq. 5) gives the partition
    hard = [torch.nn.functional.one_hot(a.argmax(1), 9).permute(0, 3, 1, 2).double() for a in assigns]
    parts = hc_partitions(assigns)
    assert [tuple(p.shape) for p in parts] == [(1, 10, 13)] * 3
    for level, cells in enumerate([(2, 2), (3, 4), (5, 7)]):
        n = cells[0] * cells[1]
        decoded = torch.eye(n, dtype=torch.float64).view(1, n, *cells)  # an indicator per cell of the coarse map
        for a in hard[level:]:
            decoded = slow_decode(decoded, a)
        assert torch.equal(decoded.argmax(1), parts[level])
        assert torch.equal(decoded.sum(1), torch.ones(1, 10, 13, dtype=torch.float64))


def test_registered_and_parameter_count():
    from mmcluster.registry import MODELS
    mod = MODELS.build(dict(type='HCClustering', fine_channels=256, coarse_channels=512))
    assert mod.scale.item() == pytest.approx(0.1) and mod.scale.dim() == 0
    # (C_f + C_c) * 128 projections + 2 (C_f + C_c) LayerNorm affine + 1 scale
    assert sum(p.numel() for p in mod.parameters()) == 768 * 128 + 2 * 768 + 1
