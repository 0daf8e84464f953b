"""Speed of mmcluster's clustering operations against the official formulations, inference and training step.

One command for the issue-14 targets of HCFormer, ClusterFormer and kMaX-DeepLab::

    python tools/benchmark/clustering_ops.py                 # full sizes, 7 interleaved rounds (~2-3 min)
    python tools/benchmark/clustering_ops.py --rounds 11 --only hc_decode hc_clustering
    python tools/benchmark/clustering_ops.py --tiny          # tiny sizes, one round: a smoke run (seconds)

Protocol: one thread, batch 1, float32. For every case both forms are built on the **same** inputs and weights;
their outputs (and, for the training step, the gradients of every input and parameter) are compared first
(``max|diff|``); then the two are timed in interleaved rounds (ours, official, official, ours, ... so that a
change of the shared machine's load hits both alike) after one warm-up call each, each timed call right after
an untimed call of the same form (``--rewarm 1``, as ``performance.py``: each form starts with its own inputs in
the caches, as inside its model; ``--rewarm 0`` times each right after the other form), and the table gives the
medians and the ratio ``official / ours`` measured in this run. Times are the CPU time of the measuring thread
(``--clock cpu``, the default: other processes on a shared machine do not stretch it) or wall time
(``--clock wall``). ``forward`` runs under ``torch.no_grad()``;
``train`` is forward + ``(out * w).sum().backward()`` with a fixed random ``w``, laid out in memory like each
form's output (:func:`_weight_like`: the same values; HCFormer decoding returns channels-last on a CPU), so the
harness's own product runs equally fast for both and the gradient reaching each form has its output's layout,
as it does behind PyTorch's elementwise ops, which keep the memory format.

The official formulations are re-expressed here from the released code (same operations, same order):

* ``hc_decode``: HCFormer's ``cluster_based_upsampling`` (DensoITLab/HCFormer,
  ``hcformer/modeling/backbone/utils.py``): 3x3 ``F.unfold`` of the coarse map (a 9x copy), 2x2 unfold of
  the assignment, per-window ``bmm``, ``F.fold``. Ours: :func:`mmcluster.models.layers.hc_decode`. 100 mask
  logits from 100x100 to 200x200.
* ``hc_clustering``: HCFormer's ``Clustering`` (same file): channels-last LayerNorm, 1x1 convs, L2
  normalisation, 3x3 unfold of the coarse embedding, 2x2 unfold of the fine one, ``bmm``, ``F.fold``, zero
  similarities masked, softmax. Ours: :class:`mmcluster.models.layers.HCClustering`. 256 channels at 200x200
  onto 512 channels at 100x100, embedding 128.
* ``clusterformer``: the released ClusterFormer ``Clustering`` layer (ClusterFormer/ClusterFormer commit
  0c384d2, ``mmcls/models/backbones/cluster.py``: raw-reshape windows, recurrent clustering, Context-Cluster
  dispatch by broadcast products). Ours: :class:`mmcluster.models.layers.ClusterFormerMixer` with
  ``compat=True`` (the same function). The ``cluster_tiny`` stage-1 layer (96 channels, 3 heads of 32,
  10x10 centres, 32x32 windows, T = 3) on the 64x64 map of a 256x256 image.
* ``kmax_kmeans``: the k-means cross-attention of kMaX-DeepLab's ``kMaXTransformerLayer`` (bytedance/kmax-deeplab,
  ``kmax_transformer_decoder.py``): arg-max over the clusters, one-hot by ``scatter_``, ``einsum`` M-step.
  Ours: :func:`mmcluster.models.layers.kmeans_cross_attention.kmeans_update`. 128 clusters, 256 value
  channels, the 161x161 stride-8 map of a 1281x1281 COCO crop. The rest of the kMaX layer (1x1 convs, the
  mask predictor) is the same in both and is not part of this case.
"""
import argparse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcluster.utils.timing import CLOCKS, interleaved_ms


@dataclass
class Case:
    """Two forms of one operation on shared inputs.

    Attributes:
        name: key of the case (``--only``).
        title: what is measured, for the table.
        target: the required speed-up ``official / ours`` (issue 14).
        ours: mmcluster's form, returns the output.
        official: the official formulation, returns the output.
        leaves: inputs and parameters whose gradients the training step computes and compares.
    """
    name: str
    title: str
    target: float
    ours: Callable[[], Tensor]
    official: Callable[[], Tensor]
    leaves: List[Tensor] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- HCFormer
def official_hc_decode(x: Tensor, assign: Tensor) -> Tensor:
    """HCFormer's released decoding: 9 candidates by a 3x3 unfold, one bmm per 2x2 window, fold."""
    b, c, hc, wc = x.shape
    h, w = assign.shape[-2:]
    windows = hc * wc
    cand = F.unfold(x, kernel_size=3, padding=1).view(b, c, 9, windows)
    cand = cand.permute(0, 3, 1, 2).reshape(b * windows, c, 9)  # per window: [C, 9]
    a = F.unfold(assign, kernel_size=2, stride=2).view(b, 9, 4, windows)
    a = a.permute(0, 3, 1, 2).reshape(b * windows, 9, 4)  # per window: [9, 4]
    out = torch.bmm(cand, a).view(b, windows, c * 4).transpose(1, 2)
    return F.fold(out, (h, w), kernel_size=2, stride=2)


def official_hc_clustering(mod, fine: Tensor, coarse: Tensor) -> Tensor:
    """HCFormer's released ``Clustering.forward`` with the parameters of :class:`HCClustering` ``mod``."""

    def embed(x: Tensor, norm, proj) -> Tensor:
        b, c, h, w = x.shape
        tokens = norm(x.flatten(2).transpose(1, 2).contiguous())  # channels-last LayerNorm
        x = tokens.transpose(1, 2).contiguous().view(b, c, h, w)
        return F.normalize(proj(x), p=2, dim=1)

    b, _, h, w = fine.shape
    f = embed(fine, mod.fine_norm, mod.fine_emb)
    c = embed(coarse, mod.coarse_norm, mod.coarse_emb)
    e = f.shape[1]
    windows = c.shape[-2] * c.shape[-1]
    cand = F.unfold(c, kernel_size=3, padding=1).view(b, e, 9, windows).permute(0, 3, 2, 1).reshape(-1, 9, e)
    pix = F.unfold(f, kernel_size=2, stride=2).view(b, e, 4, windows).permute(0, 3, 1, 2).reshape(-1, e, 4)
    sim = torch.bmm(cand, pix).view(b, windows, 9, 4).permute(0, 2, 3, 1).reshape(b * 9, 4, windows)
    sim = F.fold(sim, (h, w), kernel_size=2, stride=2).view(b, 9, h, w)
    zero_mask = -1e12 * (sim == 0).float()  # off-map candidates: the zero padding gives similarity 0
    return (sim / (1e-8 + mod.scale.abs()) + zero_mask).softmax(1)


def hc_decode_case(tiny: bool, gen: torch.Generator) -> Case:
    from mmcluster.models.layers.hc_decode import hc_decode
    q, h, w = (4, 10, 14) if tiny else (100, 200, 200)
    x = torch.randn(1, q, h // 2, w // 2, generator=gen).requires_grad_()
    assign = torch.randn(1, 9, h, w, generator=gen).softmax(1).requires_grad_()
    return Case('hc_decode', f'HCFormer decoding, {q} masks {h // 2}x{w // 2} -> {h}x{w}', 10.0,
                lambda: hc_decode(x, assign), lambda: official_hc_decode(x, assign), [x, assign])


def hc_clustering_case(tiny: bool, gen: torch.Generator) -> Case:
    from mmcluster.models.layers.hc_clustering import HCClustering
    cf, cc, emb, h, w = (8, 16, 8, 8, 12) if tiny else (256, 512, 128, 200, 200)
    mod = HCClustering(cf, cc, emb)
    with torch.no_grad():  # LayerNorm affine away from its init, so that the folded LayerNorm is exercised
        for norm in (mod.fine_norm, mod.coarse_norm):
            norm.weight.add_(0.2 * torch.randn(norm.weight.shape, generator=gen))
            norm.bias.add_(0.2 * torch.randn(norm.bias.shape, generator=gen))
    fine = torch.randn(1, cf, h, w, generator=gen).requires_grad_()
    coarse = torch.randn(1, cc, h // 2, w // 2, generator=gen).requires_grad_()
    return Case('hc_clustering', f'HCFormer clustering {cf}ch {h}x{w} -> {cc}ch {h // 2}x{w // 2}', 2.5,
                lambda: mod(fine, coarse), lambda: official_hc_clustering(mod, fine, coarse),
                [fine, coarse, *mod.parameters()])


# ------------------------------------------------------------------------------------------ ClusterFormer
def official_clusterformer(mixer, x: Tensor) -> Tensor:
    """The released ClusterFormer ``Clustering.forward`` (commit 0c384d2) with the parameters of the
    ``compat=True`` :class:`ClusterFormerMixer` ``mixer`` (``conv1 = sim_proj``, ``conv_v = k_proj``,
    ``conv_f = v_proj``, ``conv_c = q_proj``, ``conv2 = out_proj``)."""
    rca, disp = mixer.clustering, mixer.dispatch
    conv = lambda lin, t: F.conv2d(t, lin.weight[:, :, None, None], lin.bias)  # noqa: E731  a Linear as 1x1 conv
    B, _, H, W = x.shape
    E, d = mixer.heads, mixer.head_dim
    value, feature, pts = (conv(lin, x).reshape(B * E, d, H, W) for lin in (rca.k_proj, rca.v_proj,
                                                                              mixer.sim_proj))
    ww, wh = mixer.windows
    if ww > 1 and wh > 1:  # raw-reshape "windows"
        value, feature, pts = (t.reshape(B * E * ww * wh, d, H // ww, W // wh) for t in (value, feature, pts))
    b, _, h, w = pts.shape
    value = value.reshape(b, h * w, d)
    centres = F.adaptive_avg_pool2d(pts, mixer.num_centers)
    cw, ch = centres.shape[-2:]
    m = cw * ch
    centres_feature = F.adaptive_avg_pool2d(feature, mixer.num_centers).reshape(b, m, d)
    feature = feature.reshape(b, h * w, d)
    for _ in range(rca.num_iters):
        q = conv(rca.q_proj, centres).reshape(b, m, d)
        resp = torch.softmax(q @ value.transpose(-2, -1), dim=-2)  # over the clusters
        centres = (resp @ feature).reshape(b, d, cw, ch)
    cos = F.normalize(centres.reshape(b, d, m).transpose(1, 2), dim=-1) @ \
        F.normalize(pts.reshape(b, d, h * w).transpose(1, 2), dim=-1).transpose(-2, -1)
    sim = torch.sigmoid(disp.sim_beta + disp.sim_alpha * cos)  # [b, M, N]
    mask = torch.zeros_like(sim).scatter_(1, sim.argmax(dim=1, keepdim=True), 1.)
    sim = sim * mask
    agg = ((feature.unsqueeze(1) * sim.unsqueeze(-1)).sum(2) + centres_feature) / (mask.sum(-1, keepdim=True) + 1.)
    out = (agg.unsqueeze(2) * sim.unsqueeze(-1)).sum(1).reshape(b, d, h, w)
    out = out.reshape(B * E, d, H, W).reshape(B, E * d, H, W)
    return conv(mixer.out_proj, out)


def clusterformer_case(tiny: bool, gen: torch.Generator) -> Case:
    from mmcluster.models.layers.clusterformer_mixer import ClusterFormerMixer
    if tiny:
        dim, heads, head_dim, centres, windows, size, iters = 8, 2, 4, (3, 2), (2, 3), (8, 12), 3
    else:  # cluster_tiny stage 1 at a 256x256 input
        dim, heads, head_dim, centres, windows, size, iters = 96, 3, 32, (10, 10), (32, 32), (64, 64), 3
    mixer = ClusterFormerMixer(dim, heads=heads, head_dim=head_dim, num_centers=centres, windows=windows,
                               num_iters=iters, compat=True)
    with torch.no_grad():  # weights away from the init, as the parity fixture
        for p in mixer.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        mixer.dispatch.sim_alpha.fill_(1.7)
        mixer.dispatch.sim_beta.fill_(-0.3)
    x = torch.randn(1, dim, *size, generator=gen).requires_grad_()
    title = (f'ClusterFormer clustering layer {dim}ch {size[0]}x{size[1]}, {heads} heads, '
             f'{centres[0] * centres[1]} centres, T={iters}')
    return Case('clusterformer', title, 2.0, lambda: mixer(x), lambda: official_clusterformer(mixer, x),
                [x, *mixer.parameters()])


# ------------------------------------------------------------------------------------------------- kMaX
def official_kmax_kmeans(mask_logits: Tensor, pixel_value: Tensor) -> Tensor:
    """kMaX-DeepLab's released k-means cross-attention: arg-max, one-hot by scatter, einsum M-step."""
    with torch.no_grad():
        logits = mask_logits.flatten(2).detach()
        index = logits.max(1, keepdim=True)[1]
        onehot = torch.zeros_like(logits).scatter_(1, index, 1.0)
    return torch.einsum('blm,bdm->bdl', onehot, pixel_value)


def kmax_case(tiny: bool, gen: torch.Generator) -> Case:
    from mmcluster.models.layers.kmeans_cross_attention import kmeans_update
    clusters, values, h, w = (6, 8, 5, 7) if tiny else (128, 256, 161, 161)
    logits = torch.randn(1, clusters, h, w, generator=gen)
    pixel_value = torch.randn(1, values, h * w, generator=gen).requires_grad_()
    return Case('kmax_kmeans', f'kMaX k-means cross-attention, {clusters} clusters x {values}ch, {h}x{w}', 2.0,
                lambda: kmeans_update(logits, pixel_value), lambda: official_kmax_kmeans(logits, pixel_value),
                [pixel_value])


CASES: Dict[str, Callable[[bool, torch.Generator], Case]] = dict(
    hc_decode=hc_decode_case, hc_clustering=hc_clustering_case, clusterformer=clusterformer_case,
    kmax_kmeans=kmax_case)


# ------------------------------------------------------------------------------------------- measurement
def _weight(case: Case) -> Tensor:
    with torch.no_grad():
        shape = case.ours().shape
    return torch.randn(shape, generator=torch.Generator().manual_seed(1))


def _weight_like(fn: Callable[[], Tensor], weight: Tensor) -> Tensor:
    """``weight`` copied into the memory layout of ``fn``'s output (equal values, the output's strides)."""
    with torch.no_grad():
        return torch.empty_like(fn()).copy_(weight)


def run_forward(fn: Callable[[], Tensor]) -> Tensor:
    with torch.no_grad():
        return fn()


def run_train(fn: Callable[[], Tensor], leaves: Sequence[Tensor], weight: Tensor) -> List[Optional[Tensor]]:
    for t in leaves:
        t.grad = None
    (fn() * weight).sum().backward()
    return [t.grad for t in leaves]


def max_diff(a: Sequence[Optional[Tensor]], b: Sequence[Optional[Tensor]]) -> float:
    """Largest absolute difference, relative to the largest magnitude of ``b`` (per tensor)."""
    worst = 0.0
    for x, y in zip(a, b):
        if x is None or y is None:
            if (x is None) != (y is None):
                return float('inf')
            continue
        worst = max(worst, ((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item())
    return worst


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, clock: str = 'cpu',
                rewarm: int = 1) -> Dict[str, float]:
    """Median seconds of each function over ``rounds`` interleaved rounds after one warm-up call each, every
    timed call after ``rewarm`` untimed calls of the same function (see :func:`interleaved_ms`)."""
    return {name: ms / 1e3
            for name, ms in interleaved_ms(fns, rounds=rounds, warmup=1, clock=clock, rewarm=rewarm).items()}


def measure(case: Case, modes: Sequence[str], rounds: int, tol: float, clock: str = 'cpu',
            rewarm: int = 1) -> List[dict]:
    rows = []
    weight = _weight(case) if 'train' in modes else None
    for mode in modes:
        if mode == 'forward':
            ours, official = (lambda: run_forward(case.ours)), (lambda: run_forward(case.official))
            diff = max_diff([ours()], [official()])
        else:
            ours_weight, official_weight = _weight_like(case.ours, weight), _weight_like(case.official, weight)
            ours = lambda: run_train(case.ours, case.leaves, ours_weight)  # noqa: E731
            official = lambda: run_train(case.official, case.leaves, official_weight)  # noqa: E731
            diff = max_diff(ours(), official())
        t = interleaved(dict(ours=ours, official=official), rounds, clock, rewarm) if rounds > 0 else \
            dict(ours=0., official=0.)
        speedup = t['official'] / t['ours'] if t['ours'] > 0 else float('nan')
        rows.append(dict(case=case.name, title=case.title, mode=mode, ours_ms=1e3 * t['ours'],
                         official_ms=1e3 * t['official'], speedup=speedup, target=case.target,
                         met=speedup >= case.target, max_rel_diff=diff, equal=diff <= tol))
    return rows


def format_rows(rows: Sequence[dict]) -> str:
    lines = ['| operation | mode | ours (ms) | official (ms) | speed-up | target | | max rel. diff |',
             '|---|---|---:|---:|---:|---:|---|---:|']
    for r in rows:
        verdict = 'PASS' if r['met'] else 'MISS'
        eq = '' if r['equal'] else ' NOT EQUAL'
        lines.append(f"| {r['title']} | {r['mode']} | {r['ours_ms']:.1f} | {r['official_ms']:.1f} | "
                     f"{r['speedup']:.2f}x | >= {r['target']:g}x | {verdict} | {r['max_rel_diff']:.1e}{eq} |")
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', nargs='+', choices=sorted(CASES), help='cases to run (default: all)')
    parser.add_argument('--modes', nargs='+', choices=['forward', 'train'], default=['forward', 'train'])
    parser.add_argument('--rounds', type=int, default=7, help='interleaved timed rounds (0: check outputs only)')
    parser.add_argument('--tiny', action='store_true', help='tiny sizes and one round (a smoke run)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--rewarm', type=int, default=1,
                        help='untimed calls of a form right before each of its timed calls (default 1: each form '
                        'starts with its own inputs and working set cached, as when the layer runs inside its '
                        'model right after the layers that made its inputs; 0: just after the other form ran)')
    parser.add_argument('--clock', choices=sorted(CLOCKS), default='cpu',
                        help='cpu: CPU time of the measuring thread (default; robust to a shared machine, needs '
                        '--threads 1), wall: elapsed time')
    parser.add_argument('--tol', type=float, default=1e-4,
                        help='largest relative difference of outputs / gradients counted as equal')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 1 if args.tiny else args.rounds
    if args.clock == 'cpu' and args.threads != 1:
        parser.error('--clock cpu measures the calling thread only: use --threads 1 or --clock wall')
    print(f'{args.threads} thread(s), batch 1, float32, medians of {rounds} interleaved rounds ({args.clock} clock, '
          f'{args.rewarm} untimed call(s) before each timed one); '
          f'speed-up = official / ours, measured in this run')
    rows = []
    for name in args.only or list(CASES):
        case = CASES[name](args.tiny, torch.Generator().manual_seed(0))
        case_rows = measure(case, args.modes, rounds, args.tol, args.clock, args.rewarm)
        rows += case_rows
        for r in case_rows:
            print(f"{r['title']:<72} {r['mode']:<7} ours {r['ours_ms']:8.1f} ms  official {r['official_ms']:8.1f} ms"
                  f"  {r['speedup']:6.2f}x (>= {r['target']:g}x {'PASS' if r['met'] else 'MISS'})  "
                  f"max rel diff {r['max_rel_diff']:.1e}{'' if r['equal'] else ' NOT EQUAL'}", flush=True)
    print()
    print(format_rows(rows))
    return rows


if __name__ == '__main__':
    main()
