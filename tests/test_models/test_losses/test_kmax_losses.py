"""kMaX-DeepLab losses and matching against float64 references written from the equations
(``docs/kmax_deeplab.md``, MaX-DeepLab / kMaX-DeepLab papers): loops over queries and pixels, brute-force
matching over all permutations. The sampled losses are checked on fixed samples (reference) and, for the
sampler, under a seed (no unlabelled pixel, no repeats)."""
import itertools
import math

import pytest
import torch

from mmcluster.models.losses.kmax_aux_semantic_loss import kmax_aux_semantic_loss
from mmcluster.models.losses.kmax_criterion import KMaXCriterion, kmax_targets
from mmcluster.models.losses.kmax_insdis_loss import kmax_pixel_insdis_loss, sample_pixels
from mmcluster.models.losses.kmax_mask_id_loss import kmax_mask_id_loss
from mmcluster.models.losses.kmax_matcher import kmax_hungarian_match
from mmcluster.models.losses.kmax_pq_loss import kmax_pq_class_loss, kmax_pq_dice_loss

D = torch.float64


def _softmax(v):
    e = [math.exp(x - max(v)) for x in v]
    s = sum(e)
    return [x / s for x in e]


def _problem(seed=0, b=2, L=4, K=3, h=3, w=4, m=(2, 3)):
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(b, L, K + 1, generator=g, dtype=D)
    masks = torch.randn(b, L, h, w, generator=g, dtype=D) * 2
    labels, gts = [], []
    for i in range(b):
        ids = torch.randint(0, m[i] + 1, (h, w), generator=g)  # m[i] == unlabelled
        gts.append(torch.stack([(ids == j).to(D) for j in range(m[i])]))
        labels.append(torch.randint(0, K, (m[i], ), generator=g))
    return cls, masks, labels, gts


def _ref_similarity(cls_b, mask_b, labels, gt):
    """sim[l][g] = p_l(k_g) * dice(l, g) from the equations (loops)."""
    L, n = mask_b.shape[0], mask_b[0].numel()
    Z = mask_b.reshape(L, n).tolist()
    G = gt.reshape(gt.shape[0], n).tolist()
    labelled = [any(G[g][p] > 0 for g in range(len(G))) for p in range(n)]
    a = [[0.0] * n for _ in range(L)]
    for p in range(n):
        sm = _softmax([Z[l][p] for l in range(L)])
        for l in range(L):
            a[l][p] = sm[l] if labelled[p] else 0.0
    sim, dice, prob = {}, {}, {}
    for l in range(L):
        pl = _softmax(cls_b[l].tolist())
        for g in range(len(G)):
            inter = sum(a[l][p] * G[g][p] for p in range(n))
            d = inter / ((sum(a[l]) + sum(G[g])) / 2 + 1e-5)
            dice[l, g], prob[l, g] = d, pl[int(labels[g])]
            sim[l, g] = d * prob[l, g]
    return sim, dice, prob


def test_matching_is_the_best_permutation():
    cls, masks, labels, gts = _problem()
    indices, dices, probs = kmax_hungarian_match(cls, masks, labels, gts)
    for b in range(2):
        sim, dice, prob = _ref_similarity(cls[b], masks[b], labels[b], gts[b])
        m = len(labels[b])
        best = max(itertools.permutations(range(4), m), key=lambda ls: sum(sim[l, g] for g, l in enumerate(ls)))
        rows, cols = indices[b]
        got = {int(c): int(r) for r, c in zip(rows, cols)}
        assert got == {g: best[g] for g in range(m)}
        for r, c, d, p in zip(rows, cols, dices[b], probs[b]):
            assert d.item() == pytest.approx(dice[int(r), int(c)], rel=1e-5)
            assert p.item() == pytest.approx(prob[int(r), int(c)], rel=1e-5)


def test_pq_class_loss_reference():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 4, generator=g, dtype=D)
    target = torch.tensor([[0, 3, 2, 3, 1], [3, 3, 3, 3, 3]])
    weight = torch.rand(2, 5, generator=g, dtype=D)
    ref = 0.0
    for b in range(2):
        terms = []
        for l in range(5):
            p = _softmax(logits[b, l].tolist())
            y = int(target[b, l])
            alpha = 0.25 if y == 3 else 0.75
            terms.append(alpha * weight[b, l].item() * -math.log(p[y]))
        ref += sum(terms) / max(sum(t != 0 for t in terms), 1)
    assert kmax_pq_class_loss(logits, target, weight).item() == pytest.approx(ref / 2, rel=1e-10)


def test_pq_dice_and_mask_id_reference():
    cls, masks, labels, gts = _problem(seed=2)
    L = masks.shape[1]
    target = torch.zeros_like(masks)
    for b in range(2):
        target[b, :len(gts[b])] = gts[b]
    void = target.sum(1) < 1
    weight = torch.rand(2, L, dtype=D, generator=torch.Generator().manual_seed(3))
    dice_ref, ce_ref = 0.0, 0.0
    for b in range(2):
        n = masks[b, 0].numel()
        Z = masks[b].reshape(L, n).tolist()
        T = target[b].reshape(L, n).tolist()
        V = void[b].reshape(n).tolist()
        a = [[0.0] * n for _ in range(L)]
        ces = []
        for p in range(n):
            sm = _softmax([Z[l][p] for l in range(L)])
            for l in range(L):
                a[l][p] = 0.0 if V[p] else sm[l]
            ces.append(0.0 if V[p] else -sum(T[l][p] * math.log(sm[l]) for l in range(L)))
        ce_ref += sum(ces) / max(sum(c != 0 for c in ces), 1)
        s = 0.0
        for l in range(L):
            d = 1 - (2 * sum(a[l][p] * T[l][p] for p in range(n)) + 1) / (sum(a[l]) + sum(T[l]) + 1)
            s += weight[b, l].item() * d
        dice_ref += s * 0.75 / L
    got_dice = kmax_pq_dice_loss(masks.flatten(2), target.flatten(2), void.flatten(1), weight)
    got_ce = kmax_mask_id_loss(masks.flatten(2), target.flatten(2), void.flatten(1))
    assert got_dice.item() == pytest.approx(dice_ref / 2, rel=1e-10)
    assert got_ce.item() == pytest.approx(ce_ref / 2, rel=1e-10)


def test_insdis_reference_on_fixed_samples():
    g = torch.Generator().manual_seed(4)
    feat = torch.nn.functional.normalize(torch.randn(1, 5, 12, generator=g, dtype=D), dim=1)
    ids = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 1, 2, 2, 2])
    masks = torch.stack([(ids == j).to(D) for j in range(3)])[None]
    index = torch.tensor([[0, 3, 5, 6, 8, 11]])
    k = index.shape[1]
    sel = index[0].tolist()
    terms = []
    for i in range(k):
        logits = [(feat[0, :, sel[i]] * feat[0, :, sel[j]]).sum().item() / 0.3 for j in range(k)]
        # target column j: same-mask indicator normalised by its column sum
        tgt = []
        for j in range(k):
            col = sum(float(ids[sel[a]] == ids[sel[j]]) for a in range(k))
            tgt.append(float(ids[sel[i]] == ids[sel[j]]) / max(col, 1.0))
        ls = _softmax(logits)
        terms.append(-sum(t * math.log(p) for t, p in zip(tgt, ls)))
    ref = sum(terms) / max(sum(t != 0 for t in terms), 1)
    got = kmax_pixel_insdis_loss(feat, masks, index)
    assert got.item() == pytest.approx(ref, rel=1e-10)


def test_sampler_avoids_unlabelled_pixels():
    void = torch.zeros(1, 50, dtype=torch.bool)
    void[0, ::3] = True
    inv_area = torch.full((1, 50), 2.0, dtype=D)
    idx = sample_pixels(void, inv_area, 1.5, 20, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (1, 20) and len(set(idx[0].tolist())) == 20
    assert not void[0, idx[0]].any()


def test_aux_semantic_reference():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 4, 6, generator=g, dtype=D)
    labels = torch.tensor([[0, 3, 1, 2, 3, 1]])  # 3 = ignore (num_classes)
    terms = [0.0 if labels[0, p] == 3 else -math.log(_softmax(logits[0, :, p].tolist())[int(labels[0, p])])
             for p in range(6)]
    ref = sum(terms) / sum(t != 0 for t in terms)
    assert kmax_aux_semantic_loss(logits, labels, 3).item() == pytest.approx(ref, rel=1e-10)


def test_targets_padding_and_weights():
    cls, masks, labels, gts = _problem(seed=6)
    indices, dices, probs = kmax_hungarian_match(cls, masks, labels, gts)
    t = kmax_targets(cls, masks, labels, gts, indices, dices, probs, num_classes=3)
    for b in range(2):
        rows, cols = indices[b]
        unmatched = [l for l in range(4) if l not in rows.tolist()]
        assert (t['labels'][b, unmatched] == 3).all() and (t['mask_weight'][b, unmatched] == 0).all()
        assert torch.equal(t['labels'][b, rows], labels[b][cols])
        assert torch.equal(t['masks'][b, rows], gts[b][cols])
        assert torch.equal(t['void_mask'][b], gts[b].sum(0) == 0)


def test_criterion_deep_supervision_and_empty_gt():
    cls, masks, labels, gts = _problem(seed=7)
    masks.requires_grad_(True)
    feat = torch.nn.functional.normalize(torch.randn(2, 8, 3, 4, dtype=D), dim=1)
    aux = [dict(pred_logits=cls.clone(), pred_masks=masks * 0.5, pixel_feature=feat) for _ in range(2)]
    outputs = dict(pred_logits=cls, pred_masks=masks, pixel_feature=feat, aux_outputs=aux,
                   aux_semantic_pred=torch.randn(2, 4, 3, 4, dtype=D))
    semantic = torch.full((2, 3, 4), 3)
    crit = KMaXCriterion(num_classes=3, insdis_loss=dict(sample_k=8), aux_semantic_loss=dict(sample_k=8))
    torch.manual_seed(0)
    losses = crit(outputs, labels, gts, semantic)
    expected = {'loss_cls', 'loss_dice', 'loss_mask', 'loss_insdis', 'loss_aux_semantic'}
    expected |= {f'{k}_{i}' for k in ('loss_cls', 'loss_dice', 'loss_mask', 'loss_insdis') for i in range(2)}
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert masks.grad.abs().sum() > 0
    empty = crit(dict(outputs, aux_outputs=[]), [torch.zeros(0, dtype=torch.long)] * 2,
                 [torch.zeros(0, 3, 4, dtype=D)] * 2, semantic)
    assert all(torch.isfinite(v) for v in empty.values())
