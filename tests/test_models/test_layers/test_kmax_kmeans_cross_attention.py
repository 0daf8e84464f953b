"""k-means cross-attention layer (kMaX-DeepLab / CMT-DeepLab switches).

* float64 against a slow reference written from the equations (kMaX paper Sec. 3 and the layer of
  ``docs/kmax_deeplab.md``): per-pixel loops for the E-step and the M-step, per-query loops for the
  self-attention, explicit depthwise convolution; weights are read from the module's state dict;
* parity with the official PyTorch layer (``tests/data/fixtures/kmax_layer.pt``, made by
  ``tools/parity/make_kmax_fixture.py``) through the converter's key mapping, eval and train mode;
* no gradient through the argmax assignment, gradients through the CMT softmax; cluster records.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, load_tool

from mmcluster.models.layers.kmeans_cross_attention import KMeansCrossAttentionLayer
from mmcluster.models.utils.cluster_record import recording_clusters

FIXTURES = REPO / 'tests' / 'data' / 'fixtures'
EPS = 1e-3
SMALL = dict(in_channels_pixel=6, num_classes=4, in_channels_query=16, base_filters=8, num_heads=2,
             ffn_channels=32)



# ----------------------------------------------------------------------------------------- reference
def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _bn(x, sd, p):
    """Eval-mode BatchNorm over dim 0 of a per-sample tensor ``[C, ...]``."""
    shape = (-1, ) + (1, ) * (x.dim() - 1)
    mean, var = sd[p + 'running_mean'].reshape(shape), sd[p + 'running_var'].reshape(shape)
    return (x - mean) / torch.sqrt(var + EPS) * sd[p + 'weight'].reshape(shape) + sd[p + 'bias'].reshape(shape)


def _conv1x1(x, sd, p, bias=False):
    """``W x`` per position of ``x`` ``[C_in, N]`` -> ``[C_out, N]``."""
    w = sd[p + 'conv.weight'].reshape(sd[p + 'conv.weight'].shape[0], -1)
    out = torch.stack([sum(w[o, i] * x[i] for i in range(x.shape[0])) for o in range(w.shape[0])])
    return out + sd[p + 'conv.bias'][:, None] if bias else out


def _dwconv5(x, sd, p):
    """Depthwise 5x5 convolution with zero padding 2 on ``[C, H, W]``."""
    w = sd[p + 'conv.weight']
    c, h, wd = x.shape
    xp = torch.zeros(c, h + 4, wd + 4, dtype=x.dtype)
    xp[:, 2:-2, 2:-2] = x
    out = torch.zeros_like(x)
    for dy in range(5):
        for dx in range(5):
            out += w[:, 0, dy, dx][:, None, None] * xp[:, dy:dy + h, dx:dx + wd]
    return out


def reference_layer(sd, pixel, query, assignment='argmax', self_attn_input='pre_kmeans', num_heads=2,
                    key_channels=8, cross_attention_term=False):
    """The layer's equations for one sample: pixel ``[C_p, H, W]``, centres ``[D, L]`` (eval mode)."""
    c_p, h, w = pixel.shape
    n = h * w
    length = query.shape[1]
    # P = GELU(BN(W_p GELU(F))), Q_s = GELU(BN(W_q Q)), V = BN(W_v P)
    P = _gelu(_bn(_conv1x1(_gelu(pixel).reshape(c_p, n), sd, 'pixel_conv1_bn_act.'), sd, 'pixel_conv1_bn_act.norm.'))
    Qs = _gelu(_bn(_conv1x1(query, sd, 'query_conv1_bn_act.'), sd, 'query_conv1_bn_act.norm.'))
    V = _bn(_conv1x1(P, sd, 'pixel_v_conv_bn.'), sd, 'pixel_v_conv_bn.norm.')
    # predictor: mask logits Z and class logits
    pp = 'predictor.'
    x = _gelu(_bn(_dwconv5(P.reshape(-1, h, w), sd, pp + 'pixel_space_head_conv0bnact.').reshape(-1, n), sd,
                  pp + 'pixel_space_head_conv0bnact.norm.'))
    x = _gelu(_bn(_conv1x1(x, sd, pp + 'pixel_space_head_conv1bnact.'), sd, pp + 'pixel_space_head_conv1bnact.norm.'))
    x = _bn(_conv1x1(x, sd, pp + 'pixel_space_head_last_convbn.', bias=True), sd,
            pp + 'pixel_space_head_last_convbn.norm.')
    x = x / x.norm(dim=0, keepdim=True)
    kern = _bn(_conv1x1(Qs, sd, pp + 'transformer_mask_head.'), sd, pp + 'transformer_mask_head.norm.')
    Z = torch.zeros(length, n, dtype=pixel.dtype)
    for l in range(length):
        for p in range(n):
            Z[l, p] = (x[:, p] * kern[:, l]).sum()
    Z = _bn(Z[None], sd, pp + 'pixel_space_mask_batch_norm.')[0]
    cls = _conv1x1(Qs, sd, pp + 'transformer_class_head.', bias=True).T
    k_prime = cls.shape[1]
    cls[:, -1] += math.log((k_prime - 1) * 0.9 / 0.1)
    # E-step: each pixel to its best centre (argmax) or a softmax over the centres
    A = torch.zeros(length, n, dtype=pixel.dtype)
    for p in range(n):
        if assignment == 'argmax':
            A[int(torch.argmax(Z[:, p])), p] = 1.0
        else:
            e = torch.exp(Z[:, p] - Z[:, p].max())
            A[:, p] = e / e.sum()
    # M-step: the assignment-weighted SUM of the pixel values
    U = torch.zeros(V.shape[0], length, dtype=pixel.dtype)
    for l in range(length):
        for p in range(n):
            U[:, l] += A[l, p] * V[:, p]
    if cross_attention_term:  # CMT: + the original cross-attention (softmax over the pixels of each centre)
        for l in range(length):
            e = torch.exp(Z[l] - Z[l].max())
            for p in range(n):
                U[:, l] += e[p] / e.sum() * V[:, p]
    U = _bn(U, sd, 'kmeans_query_batch_norm_retrieved_value.')
    Q = query + _bn(_conv1x1(U, sd, 'kmeans_query_conv3_bn.'), sd, 'kmeans_query_conv3_bn.norm.')
    # self-attention (BN over heads on the logits, softmax over keys, BN + GELU on the output)
    src = Qs if self_attn_input == 'pre_kmeans' else _gelu(
        _bn(_conv1x1(Q, sd, 'query_conv1_bn_act.'), sd, 'query_conv1_bn_act.norm.'))
    qkv = _bn(_conv1x1(src, sd, 'query_qkv_conv_bn.'), sd, 'query_qkv_conv_bn.norm.')
    q, k, v = qkv[:key_channels], qkv[key_channels:2 * key_channels], qkv[2 * key_channels:]
    dk, dv = key_channels // num_heads, v.shape[0] // num_heads
    S = torch.zeros(num_heads, length, length, dtype=pixel.dtype)
    for hh in range(num_heads):
        for i in range(length):
            for j in range(length):
                S[hh, i, j] = (q[hh * dk:(hh + 1) * dk, i] * k[hh * dk:(hh + 1) * dk, j]).sum()
    S = _bn(S, sd, 'query_self_attention.batch_norm_similarity.')
    out = torch.zeros(v.shape[0], length, dtype=pixel.dtype)
    for hh in range(num_heads):
        for i in range(length):
            a = torch.exp(S[hh, i] - S[hh, i].max())
            a = a / a.sum()
            out[hh * dv:(hh + 1) * dv, i] = (v[hh * dv:(hh + 1) * dv] * a[None]).sum(1)
    out = _gelu(_bn(out, sd, 'query_self_attention.batch_norm_retrieved_value.'))
    Q = _gelu(Q + _bn(_conv1x1(out, sd, 'query_conv3_bn.'), sd, 'query_conv3_bn.norm.'))
    f = _gelu(_bn(_conv1x1(Q, sd, 'query_ffn_conv1_bn_act.'), sd, 'query_ffn_conv1_bn_act.norm.'))
    Q = _gelu(Q + _bn(_conv1x1(f, sd, 'query_ffn_conv2_bn.'), sd, 'query_ffn_conv2_bn.norm.'))
    return Q, cls, Z.reshape(length, h, w), A


def _randomise(module, seed=0):
    """Non-trivial weights and BN statistics (the zero-init BNs would hide whole branches)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            r = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if name.endswith('running_var'):
                t.copy_(0.5 + r.abs())
            elif name.endswith('weight') and t.dim() == 1:
                t.copy_(1 + 0.3 * r)
            elif t.dim() >= 2:
                t.copy_(r / math.sqrt(t[0].numel()))
            else:
                t.copy_(0.3 * r)
    return module


def _make(**kwargs):
    layer = KMeansCrossAttentionLayer(**{**SMALL, **kwargs}).double()
    return _randomise(layer).eval()


@pytest.mark.parametrize('assignment,self_attn_input,xattn', [
    ('argmax', 'pre_kmeans', False), ('argmax', 'post_kmeans', False), ('softmax', 'pre_kmeans', False),
    ('softmax', 'pre_kmeans', True)])
def test_layer_matches_reference(assignment, self_attn_input, xattn):
    layer = _make(assignment=assignment, self_attn_input=self_attn_input, cross_attention_term=xattn)
    g = torch.Generator().manual_seed(1)
    pixel = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64)
    query = torch.randn(2, 16, 5, generator=g, dtype=torch.float64)
    with torch.no_grad():
        out, pred = layer(pixel, query)
    sd = {k: v for k, v in layer.state_dict().items()}
    for b in range(2):
        q_ref, cls_ref, z_ref, _ = reference_layer(sd, pixel[b], query[b], assignment, self_attn_input,
                                                   cross_attention_term=xattn)
        torch.testing.assert_close(pred['mask_logits'][b], z_ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(pred['class_logits'][b], cls_ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(out[b], q_ref, rtol=1e-9, atol=1e-9)


def test_switches_change_the_output():
    g = torch.Generator().manual_seed(2)
    pixel = torch.randn(1, 6, 3, 4, generator=g, dtype=torch.float64)
    query = torch.randn(1, 16, 5, generator=g, dtype=torch.float64)
    outs = [_make(**kw)(pixel, query)[0] for kw in (
        dict(), dict(self_attn_input='post_kmeans'), dict(assignment='softmax'))]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_no_gradient_through_argmax_but_through_softmax():
    g = torch.Generator().manual_seed(3)
    pixel = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64)
    query = torch.randn(2, 16, 5, generator=g, dtype=torch.float64)
    for assignment, expect_grad in (('argmax', False), ('softmax', True)):
        layer = _make(assignment=assignment)
        out, _ = layer(pixel, query)
        out.sum().backward()
        # the query output reaches the mask logits' BN only through the assignment
        grad = layer.predictor.pixel_space_mask_batch_norm.weight.grad
        has = grad is not None and bool(grad.abs().sum() > 0)
        assert has == expect_grad, assignment
        assert layer.pixel_v_conv_bn.conv.weight.grad.abs().sum() > 0  # the M-step carries the gradient


def test_records_assignments():
    g = torch.Generator().manual_seed(4)
    pixel = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64)
    query = torch.randn(2, 16, 5, generator=g, dtype=torch.float64)
    for assignment, kind in (('argmax', 'hard'), ('softmax', 'soft')):
        layer = _make(assignment=assignment, layer_index=3)
        sd = layer.state_dict()
        with recording_clusters(layer) as records, torch.no_grad():
            layer(pixel, query)
        (rec, ) = records
        assert rec.kind == kind and rec.step == 3 and rec.spatial_shape == (3, 4) and rec.num_clusters == 5
        for b in range(2):
            a_ref = reference_layer(sd, pixel[b], query[b], assignment)[3]  # [L, HW]
            if kind == 'hard':
                assert torch.equal(rec.assignment[b], a_ref.argmax(0))
            else:
                torch.testing.assert_close(rec.assignment[b], a_ref.T)


def test_cmt_mask_residual_and_coordinates():
    g = torch.Generator().manual_seed(5)
    pixel = torch.randn(1, 6, 3, 4, generator=g, dtype=torch.float64)
    query = torch.randn(1, 16, 5, generator=g, dtype=torch.float64)
    prev = torch.randn(1, 5, 3, 4, generator=g, dtype=torch.float64)
    layer = _make(assignment='softmax', mask_residual=True)
    with torch.no_grad():
        _, own = layer(pixel, query)
        _, res = layer(pixel, query, prev_mask_logits=prev)
    torch.testing.assert_close(res['mask_logits'] - own['mask_logits'], prev)
    coord = _make(assignment='softmax', coord_conv=True)
    assert coord.pixel_conv1_bn_act.conv.in_channels == 6 + 2
    with torch.no_grad():
        coord.query_coord_proj.weight.normal_()
        a, _ = coord(pixel, query)
        b, _ = coord(pixel, query, prev_mask_logits=prev)
    assert not torch.allclose(a, b)  # the centroids of the reference masks move the centres


def test_bad_arguments():
    with pytest.raises(ValueError, match='argmax'):
        KMeansCrossAttentionLayer(8, 3, assignment='sparsemax')
    with pytest.raises(ValueError, match='pre_kmeans'):
        KMeansCrossAttentionLayer(8, 3, self_attn_input='before')


# ------------------------------------------------------------------------------- official parity
def _official_to_ours(shapes, prefix):
    """Fill the official state dict (deterministic weights) and map it with the converter."""
    parity = load_tool('tools/parity/make_kmax_fixture.py')
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    official = parity.deterministic_state_dict(parity.unpack_shapes(shapes))
    full = {prefix[0] + k: v for k, v in official.items()}
    ours, dropped = conv.convert(full)
    assert not dropped
    return official, {k[len(prefix[1]):]: v for k, v in ours.items()}, parity


def test_parity_with_official_layer():
    fx = torch.load(FIXTURES / 'kmax_layer.pt', weights_only=True)
    official, state, parity = _official_to_ours(
        fx['shapes'], ('sem_seg_head.predictor._kmax_transformer_layers.0.',
                       'panoptic_head.transformer_decoder.kmax_transformer_layers.0.'))
    assert abs(parity.checksum(official) - fx['checksum']) < 1e-6
    cfg = fx['config']
    layer = KMeansCrossAttentionLayer(cfg['in_channels_pixel'], cfg['num_classes'],
                                      in_channels_query=cfg['in_channels_query']).double()
    layer.load_state_dict(state, strict=True)
    for mode in ('eval', 'train'):
        layer.train(mode == 'train')
        with torch.no_grad():
            q, pred = layer(fx['pixel'], fx['query'])
        ref = fx[mode]
        torch.testing.assert_close(q, ref['query'], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(pred['class_logits'], ref['class_logits'], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(pred['mask_logits'], ref['mask_logits'], rtol=1e-10, atol=1e-10)
