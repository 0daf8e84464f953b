"""Numerics of every registered backbone and clustering op (issue 13, item 5), driven by the registry.

* bf16 autocast on the CPU: forward and backward of the smallest variant of every backbone (found by
  ``tests/registry_cases.py``) give finite outputs and finite gradients (bf16 is ~90x slower on the CPU, so a
  tiny odd input and batch 1; correctness only); fp16 and bf16 autocast on a GPU when one is available.
* Determinism: the same input twice (eval mode) gives identical outputs and identical cluster records
  (``recording_clusters``) in every clustering module of every backbone.
* Batch independence: in eval mode a batch of two gives, per sample, the outputs (float32, ``1e-5``) and the
  cluster assignments of two batches of one.
* Equivariances that the equations guarantee:
  - DPC-kNN (ClusTR paper Eqs. 1-2): density, distance to the nearest denser token and score are functions of
    the token *set*, so permuting the tokens permutes the result. Cluster ids are ranks in descending score
    (``dpc_knn``'s definition), so on tie-free data the ids themselves are permuted, not only the partition.
  - k-means cross-attention (kMaX-DeepLab paper Sec. 3): the E-step argmax over the centres, the M-step sum
    over the pixels and the centres' self-attention treat the centres as a set (no positional term), so
    permuting the centres permutes the updated centres, the mask and class logits, and relabels the
    assignment; permuting the pixels (no positional term in the default configuration either: the pixel
    path is 1x1 convolutions) permutes the masks.

Cost: about 20-30 s on one CPU thread (``--durations=0`` lists each case).
"""
import pytest
import torch

from mmcluster.models.layers.clusterformer_clustering import CENTRE_UPDATES, RecurrentCrossAttentionClustering
from mmcluster.models.layers.dpc_knn import dpc_knn
from mmcluster.models.layers.hc_clustering import HCClustering
from mmcluster.models.layers.hc_decode import HC_OFFSETS
from mmcluster.models.layers.kmeans_cross_attention import KMeansCrossAttentionLayer
from mmcluster.models.utils.cluster_record import recording_clusters
from registry_cases import backbones, build, one_thread, smallest_cases, tensors  # noqa: F401 (fixture)

SIZE = (35, 41)  # odd, tiny
SMALLEST = list(smallest_cases())


def make(cls, variant, train: bool):
    torch.manual_seed(0)
    model = build(cls, variant)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model.train(train)  # mmdet-style train() overrides return None
    return model


def test_every_backbone_is_covered():
    assert len(SMALLEST) == len(backbones()) >= 6


def check_autocast_finite(cls, variant, device: str, dtype: torch.dtype) -> None:
    model = make(cls, variant, train=True).to(device)
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.autocast(device, dtype=dtype):
        outs = [o for o in tensors(model(x)) if o.is_floating_point()]
        assert outs, f'{cls.__name__} returned no floating-point tensor'
        bad = [i for i, o in enumerate(outs) if not torch.isfinite(o).all()]
        assert not bad, f'non-finite {dtype} outputs {bad} of {[tuple(o.shape) for o in outs]}'
        loss = sum((o.float() * torch.randn(o.shape, generator=torch.Generator().manual_seed(i)).to(device)).sum()
                   for i, o in enumerate(outs))
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in params if p.grad is None]
    assert not no_grad, f'{len(no_grad)} of {len(params)} parameters got no gradient: {no_grad[:10]}'
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    assert not bad, f'non-finite {dtype} gradients: {bad[:10]}'


@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_bf16_autocast_forward_backward_finite(cls, variant):
    check_autocast_finite(cls, variant, 'cpu', torch.bfloat16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_cuda_autocast_forward_backward_finite(cls, variant, dtype):
    """The same check under CUDA autocast (plain autocast, no loss scaling: the loss is O(1))."""
    check_autocast_finite(cls, variant, 'cuda', dtype)


def run_recorded(model, x):
    with torch.no_grad(), recording_clusters(model) as records:
        outs = list(tensors(model(x)))
    return outs, list(records)


@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_same_input_twice_same_outputs_and_clusters(cls, variant):
    model = make(cls, variant, train=False)
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(2))
    outs1, recs1 = run_recorded(model, x)
    outs2, recs2 = run_recorded(model, x.clone())
    assert len(outs1) == len(outs2)
    for a, b in zip(outs1, outs2):
        assert torch.equal(a, b)
    assert [(r.name, r.step, r.kind) for r in recs1] == [(r.name, r.step, r.kind) for r in recs2]
    for a, b in zip(recs1, recs2):
        assert torch.equal(a.assignment, b.assignment), (a.name, a.step)
        assert a.num_clusters == b.num_clusters and a.spatial_shape == b.spatial_shape, a.name


def test_some_backbones_record_clusters():
    """The determinism test above would pass vacuously on a backbone that records nothing: the clustering
    backbones must record."""
    recorded = set()
    for case in SMALLEST:
        cls, variant = case.values
        _, recs = run_recorded(make(cls, variant, train=False), torch.randn(1, 3, *SIZE))
        if recs:
            recorded.add(cls.__name__)
    # HCResNet / HCSwin / KMaXConvNeXt are plain backbones: their clustering is in the neck / decoder (layer
    # tests below)
    assert {'ClusTR', 'ContextCluster', 'ClusterFormer'} <= recorded, recorded


@pytest.mark.parametrize('cls,variant', SMALLEST)
def test_batch_of_two_equals_two_batches_of_one(cls, variant):
    model = make(cls, variant, train=False)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, *SIZE, generator=g)
    outs2, recs2 = run_recorded(model, x)
    singles = [run_recorded(model, x[i:i + 1]) for i in range(2)]
    for i, (outs1, recs1) in enumerate(singles):
        assert len(outs1) == len(outs2)
        for j, (a, b) in enumerate(zip(outs1, outs2)):
            assert b.shape[0] == 2 and a.shape == b[i:i + 1].shape, (j, a.shape, b.shape)
            torch.testing.assert_close(a, b[i:i + 1], rtol=1e-5, atol=1e-5 * max(1.0, float(b.abs().max())),
                                       msg=lambda m: f'sample {i}, output {j}: {m}')
        assert [(r.name, r.step) for r in recs1] == [(r.name, r.step) for r in recs2]
        for a, b in zip(recs1, recs2):
            if a.kind == 'hard':
                mismatch = (a.assignment[0] != b.assignment[i]).float().mean().item()
                assert mismatch == 0, f'{a.name} step {a.step}: {mismatch:.2%} of tokens assigned differently'
            else:
                torch.testing.assert_close(a.assignment[0], b.assignment[i], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- DPC-kNN


@pytest.mark.parametrize('assign', ['center', 'parent'])
@pytest.mark.parametrize('dist_scale', [True, False])
def test_dpc_knn_permuting_tokens_permutes_result(assign, dist_scale):
    g = torch.Generator().manual_seed(4)
    B, N, C, M = 2, 97, 6, 11
    # clustered data (a few blobs) so that clusters are non-trivial; continuous, hence tie-free
    x = torch.randn(B, 5, C, generator=g).repeat_interleave(20, dim=1)[:, :N] + 0.3 * torch.randn(B, N, C,
                                                                                                   generator=g)
    perm = torch.stack([torch.randperm(N, generator=g) for _ in range(B)])
    xp = torch.gather(x, 1, perm.unsqueeze(-1).expand(B, N, C))  # xp[:, i] = x[:, perm[i]]
    idx, centers = dpc_knn(x, M, k=5, dist_scale=dist_scale, assign=assign)
    idx_p, centers_p = dpc_knn(xp, M, k=5, dist_scale=dist_scale, assign=assign)
    # ids are ranks in descending score: identical after undoing the permutation
    assert torch.equal(idx_p, torch.gather(idx, 1, perm))
    assert torch.equal(torch.gather(perm, 1, centers_p), centers)
    assert all(len(set(idx[b].tolist())) == M for b in range(B))  # every centre keeps its own cluster


def test_dpc_knn_batch_of_two_equals_two_batches_of_one():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 80, 8, generator=g)
    x[1] *= 10  # very different scales in one batch
    idx, centers = dpc_knn(x, 9, k=5)
    for b in range(2):
        i1, c1 = dpc_knn(x[b:b + 1], 9, k=5)
        assert torch.equal(i1[0], idx[b]) and torch.equal(c1[0], centers[b])


# ---------------------------------------------------------------- k-means cross-attention


def kmeans_layer(**kwargs):
    torch.manual_seed(0)
    layer = KMeansCrossAttentionLayer(in_channels_pixel=16, num_classes=5, in_channels_query=32, base_filters=16,
                                      num_heads=2, ffn_channels=64, **kwargs)
    # non-trivial normalisation (the zero-initialised BN weights would switch the residual branches off)
    for m in layer.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return layer.eval()


@pytest.mark.parametrize('assignment', ['argmax', 'softmax'])
def test_kmeans_cross_attention_permuting_centres_permutes_outputs(assignment):
    layer = kmeans_layer(assignment=assignment)
    g = torch.Generator().manual_seed(6)
    B, L, H, W = 2, 7, 9, 11
    pixels = torch.randn(B, 16, H, W, generator=g)
    queries = torch.randn(B, 32, L, generator=g)
    perm = torch.randperm(L, generator=g)
    with torch.no_grad(), recording_clusters(layer) as recs:
        q, pred = layer(pixels, queries)
        qp, pred_p = layer(pixels, queries[:, :, perm])
    torch.testing.assert_close(qp, q[:, :, perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pred_p['mask_logits'], pred['mask_logits'][:, perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pred_p['class_logits'], pred['class_logits'][:, perm], rtol=1e-5, atol=1e-5)
    a, ap = recs
    if assignment == 'argmax':  # centre perm[l] of the permuted call is centre l: ids relabelled by perm
        assert torch.equal(perm[ap.assignment], a.assignment)
    else:
        torch.testing.assert_close(ap.assignment, a.assignment[..., perm])



# ---------------------------------------------------------------- ClusterFormer clustering


@pytest.mark.parametrize('update', CENTRE_UPDATES)
def test_recurrent_clustering_permutation_equivariance(update):
    torch.manual_seed(0)
    layer = RecurrentCrossAttentionClustering(embed_dims=16, num_heads=2, num_iters=3, update=update).eval()
    g = torch.Generator().manual_seed(8)
    B, N, M = 2, 30, 6
    feats, centres = torch.randn(B, N, 16, generator=g), torch.randn(B, M, 16, generator=g)
    pc, pt = torch.randperm(M, generator=g), torch.randperm(N, generator=g)
    with torch.no_grad(), recording_clusters(layer) as recs:
        out = layer(feats, centres=centres)
        n0 = len(recs)
        out_c = layer(feats, centres=centres[:, pc])
        out_t = layer(feats[:, pt], centres=centres)
    torch.testing.assert_close(out_c, out[:, pc], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_t, out, rtol=1e-5, atol=1e-5)
    base, by_c, by_t = recs[:n0], recs[n0:2 * n0], recs[2 * n0:]
    assert n0 == 3 and len(by_c) == len(by_t) == n0
    for a, c, t in zip(base, by_c, by_t):  # soft [B, E, N, M]
        torch.testing.assert_close(c.assignment, a.assignment[..., pc], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(t.assignment, a.assignment[..., pt, :], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- HCFormer clustering


def hc_layer():
    torch.manual_seed(0)
    layer = HCClustering(fine_channels=12, coarse_channels=20, embed_dims=16)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for norm in (layer.fine_norm, layer.coarse_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
    return layer.eval()


@pytest.mark.parametrize('size', [(9, 13), (10, 8)])
def test_hc_clustering_transpose_equivariance(size):
    layer = hc_layer()
    g = torch.Generator().manual_seed(9)
    h, w = size
    hc, wc = (h + 1) // 2, (w + 1) // 2
    fine, coarse = torch.randn(2, 12, h, w, generator=g), torch.randn(2, 20, hc, wc, generator=g)
    with torch.no_grad():
        a = layer(fine, coarse)
        at = layer(fine.transpose(-1, -2), coarse.transpose(-1, -2))
    swap = [HC_OFFSETS.index((dx, dy)) for dy, dx in HC_OFFSETS]
    torch.testing.assert_close(at, a[:, swap].transpose(-1, -2), rtol=1e-5, atol=1e-6)


def test_hc_clustering_invariant_to_per_pixel_affine_fine_features():
    layer = hc_layer()
    g = torch.Generator().manual_seed(10)
    fine, coarse = torch.randn(2, 12, 9, 11, generator=g), torch.randn(2, 20, 5, 6, generator=g)
    scale = torch.rand(2, 1, 9, 11, generator=g) * 1.5 + 0.5
    shift = torch.randn(2, 1, 9, 11, generator=g) * 2
    with torch.no_grad(), recording_clusters(layer) as recs:
        a = layer(fine, coarse)
        a2 = layer(fine * scale + shift, coarse)
    # LayerNorm's eps (1e-5 against a variance of ~1) is the only difference
    torch.testing.assert_close(a2, a, rtol=1e-4, atol=1e-4)
    assert torch.equal(recs[0].assignment, recs[1].assignment)


def test_hc_clustering_deterministic_and_batch_independent():
    layer = hc_layer()
    g = torch.Generator().manual_seed(11)
    fine, coarse = torch.randn(2, 12, 9, 11, generator=g), torch.randn(2, 20, 5, 6, generator=g)
    with torch.no_grad(), recording_clusters(layer) as recs:
        a = layer(fine, coarse)
        again = layer(fine, coarse)
        singles = [layer(fine[i:i + 1], coarse[i:i + 1]) for i in range(2)]
    assert torch.equal(a, again) and torch.equal(recs[0].assignment, recs[1].assignment)
    for i in range(2):
        torch.testing.assert_close(singles[i], a[i:i + 1], rtol=1e-5, atol=1e-6)
        assert torch.equal(recs[2 + i].assignment[0], recs[0].assignment[i])
