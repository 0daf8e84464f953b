"""Context Clusters, ClusTR and DPC-kNN against the machine's floor, for inference and the training step.

Issue 14, item 1 (Context Clusters, ClusTR, DPC-kNN). Everything is measured **in one run, on one thread, batch
1, fp32**, in interleaved rounds: every round times the matmul probe once and then every model / operation
once, so all of them see the same machine state; the table gives medians over the rounds.

* **Floor** of a model: its multiply-adds (``MACs``, counted by ``tools/get_flops.py``'s counter, whose "FLOPs"
  are multiply-adds) divided by the fp32 matmul rate of this run, measured by a large ``torch.matmul`` probe
  (``n x n @ n x n`` = ``n^3`` multiply-adds). The floor of a **training step** (forward + backward) is
  ``3 x`` the forward MACs: the backward of every linear map costs two products of the forward's size (the
  gradients of its input and of its weight).
* **Ratio** = the median over rounds of ``time / floor`` with each round's own probe (robust against the other
  processes on a shared machine); the ``ms`` columns are medians of their own.
* **Clock**: the process's CPU time by default (``--clock process``): on a shared machine the wall clock also
  counts the time other processes hold the core, the CPU time only what this process ran (it still suffers from
  a busy machine's shared caches and hyper-threads, the probe too). ``--clock wall`` on an idle machine.
* **DPC-kNN**: mmcluster's :func:`~mmcluster.models.layers.dpc_knn.dpc_knn` against TCFormer's formulation
  (:func:`tcformer_dpc_knn`, written here from the TCFormer paper's description: one dense ``N x N`` distance
  matrix, batched) on ClusTR stage-1 inputs (``C = 64``, ``M = N / 16``), with the speed-up
  ``time(TCFormer) / time(mmcluster)``. The assignment is not differentiable (no backward): the training step
  runs the same clustering, so one row covers both.

    python tools/benchmark/performance.py                        # the table of issue 14 (about 2 minutes)
    python tools/benchmark/performance.py --rounds 31 --json perf.json
    python tools/benchmark/performance.py --only coc-tiny --profile forward   # where the time goes
    python tools/benchmark/performance.py --quick                # seconds: tiny sizes, no targets judged

``--profile {forward,train}`` prints :mod:`torch.profiler`'s operator table (self CPU time) for every selected
target instead of the timing table. The numbers depend on the machine and its load: compare ratios measured in
the same run, never absolute times across runs.
"""
import argparse
import importlib.util
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[2]


def _load_get_flops():
    """``tools/get_flops.py`` (a script, not a package) as a module: the project's FLOP counter."""
    path = REPO / 'tools' / 'get_flops.py'
    spec = importlib.util.spec_from_file_location('get_flops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------- TCFormer
@torch.no_grad()
def tcformer_dpc_knn(x: torch.Tensor, num_clusters: int, k: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
    """TCFormer's DPC-kNN formulation (Zeng et al., "Not All Tokens Are Equal", CVPR 2022, Sec. 3.2), batched.

    From the paper's description: one dense distance matrix ``d_ij = ||x_i - x_j|| / sqrt(C)`` per sample;
    density ``rho_i = exp(-mean of the k smallest d_ij^2)`` (self included) with a ``1e-6`` uniform noise
    against ties; ``delta_i`` = the distance to the nearest denser token, or the largest distance of the
    sample for the densest token; score ``rho_i * delta_i``; the ``M`` best scores are the centres and every
    token joins its nearest centre. Returns ``idx_cluster [B, N]`` (cluster ``m`` = the ``m``-th best score) and
    ``centers [B, M]`` (token indices), as :func:`~mmcluster.models.layers.dpc_knn.dpc_knn`.
    The baseline of :func:`main`; not used by any model.
    """
    B, N, C = x.shape
    dist = torch.cdist(x, x) / math.sqrt(C)  # [B, N, N]
    knn = torch.topk(dist, k, dim=-1, largest=False).values
    density = (-(knn**2).mean(dim=-1)).exp()
    density = density + torch.rand(density.shape, generator=torch.Generator().manual_seed(0)) * 1e-6
    denser = density[:, None, :] > density[:, :, None]  # [b, i, j]: j denser than i
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    delta = torch.where(denser, dist, dist_max).min(dim=-1).values
    centers = torch.topk(delta * density, num_clusters, dim=-1).indices  # [B, M]
    to_centers = torch.gather(dist, 1, centers[..., None].expand(B, num_clusters, N))  # [B, M, N]
    idx = to_centers.argmin(dim=1)
    idx.scatter_(1, centers, torch.arange(num_clusters).expand(B, num_clusters))
    return idx, centers


# ----------------------------------------------------------------------------------------------- targets
@dataclass
class Target:
    """A model (``build``) timed for inference and training against ``ratio`` x its floor."""
    name: str
    build: Callable[[], nn.Module]
    size: int
    ratio: float
    macs: int = 0
    model: Optional[nn.Module] = None
    input: Optional[torch.Tensor] = None
    times: Dict[str, List[float]] = field(default_factory=lambda: {'forward': [], 'train': []})
    ratios: Dict[str, List[float]] = field(default_factory=lambda: {'forward': [], 'train': []})


@dataclass
class OpPair:
    """mmcluster's DPC-kNN and TCFormer's formulation on the same ``[1, h*w, C]`` tokens."""
    name: str
    hw: int
    channels: int
    speedup: float
    input: Optional[torch.Tensor] = None
    times: Dict[str, List[float]] = field(default_factory=lambda: {'mmcluster': [], 'tcformer': []})


def coc(arch: str) -> Callable[[], nn.Module]:
    def build():
        from mmcluster.models.backbones.context_cluster import ContextCluster
        return ContextCluster(arch, out_indices=(3, ))  # the classification backbone
    return build


def clustr(arch: str) -> Callable[[], nn.Module]:
    def build():
        from mmcluster.models.backbones.clustr import ClusTR
        return ClusTR(arch)  # all four stages (dense use)
    return build


def make_targets(quick: bool) -> List[Target]:
    size = 64 if quick else 224
    return [
        Target('coc-tiny', coc('tiny'), size, 1.5),
        Target('coc-small', coc('small'), size, 1.3),
        Target('coc-medium', coc('medium'), size, 1.3),
        Target('clustr-tiny', clustr('tiny'), size, 2.0),
    ]


def make_ops(quick: bool) -> List[OpPair]:
    sizes = (16, 24) if quick else (56, 112)  # N = 3136 / 12544: ClusTR-T stage 1 at 224^2 / 448^2
    return [OpPair(f'dpc-knn N={s * s}', s, 64, 3.0) for s in sizes]


def smooth_tokens(hw: int, channels: int, seed: int = 0) -> torch.Tensor:
    """A stage-1-like feature map (Gaussian noise averaged over 5x5 windows) as ``[1, hw*hw, C]`` tokens."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.randn(1, channels, hw + 4, hw + 4, generator=g), 5, 1)
    return x.flatten(2).transpose(1, 2).contiguous()


# ----------------------------------------------------------------------------------------------- timing
CLOCKS = {'process': time.process_time, 'wall': time.perf_counter}
clock = CLOCKS['process']


def probe_rate(n: int) -> float:
    """fp32 multiply-adds per second of one ``n x n @ n x n`` matmul (``n^3`` multiply-adds)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return n**3 / timed(lambda: torch.matmul(a, b))


def forward_step(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    """Forward + backward of a scalar loss over every output (gradients freed first, as an optimiser would)."""
    for p in model.parameters():
        p.grad = None
    outs = model(x)
    sum(o.mean() for o in outs).backward()


def timed(fn: Callable[[], None]) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def prepare(targets: Sequence[Target], ops: Sequence[OpPair]) -> None:
    get_flops = _load_get_flops()
    torch.manual_seed(0)
    for t in targets:
        t.model = t.build().eval()
        t.input = torch.randn(1, 3, t.size, t.size)
        t.macs = int(get_flops.count_flops(t.model, (t.input, ))['flops'])
    for op in ops:
        op.input = smooth_tokens(op.hw, op.channels)


def mmcluster_dpc(op: OpPair) -> None:
    from mmcluster.models.layers.dpc_knn import dpc_knn
    dpc_knn(op.input, math.ceil(op.input.shape[1] / 16))


def run_rounds(targets: Sequence[Target], ops: Sequence[OpPair], rounds: int, warmup: int,
               probe_n: int) -> List[float]:
    """Interleaved rounds: probe, then every target's forward and training step, then every op pair."""
    rates = []
    for r in range(warmup + rounds):
        rate = probe_rate(probe_n)
        keep = r >= warmup
        if keep:
            rates.append(rate)
        for t in targets:
            for mode in ('forward', 'train'):
                t.model.train(mode == 'train')
                fn = forward_step if mode == 'forward' else train_step
                dt = timed(lambda: fn(t.model, t.input))
                if keep:
                    floor = t.macs * (3 if mode == 'train' else 1) / rate
                    t.times[mode].append(dt)
                    t.ratios[mode].append(dt / floor)
        for op in ops:
            m = math.ceil(op.input.shape[1] / 16)
            for impl, fn in (('mmcluster', lambda: mmcluster_dpc(op)),
                             ('tcformer', lambda: tcformer_dpc_knn(op.input, m))):
                dt = timed(fn)
                if keep:
                    op.times[impl].append(dt)
    return rates


def dpc_agreement(op: OpPair) -> float:
    """Fraction of tokens whose cluster has the same centre token in both formulations on the benchmark input
    (cluster ids are score ranks, so two near-equal scores swap the ids of whole clusters). A sanity check,
    not a test: ``torch.cdist`` rounds the distances differently and TCFormer adds noise, which can flip
    near-ties of the densities and scores."""
    from mmcluster.models.layers.dpc_knn import dpc_knn
    m = math.ceil(op.input.shape[1] / 16)
    (idx_a, cen_a), (idx_b, cen_b) = dpc_knn(op.input, m), tcformer_dpc_knn(op.input, m)
    return float((torch.gather(cen_a, 1, idx_a) == torch.gather(cen_b, 1, idx_b)).float().mean())


def profile(targets: Sequence[Target], mode: str, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    for t in targets:
        t.model.train(mode == 'train')
        fn = forward_step if mode == 'forward' else train_step
        for _ in range(2):
            fn(t.model, t.input)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                fn(t.model, t.input)
        print(f'\n=== {t.name} {t.size}x{t.size} {mode} (3 calls, self CPU time) ===')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows))


# ----------------------------------------------------------------------------------------------- report
def report(targets: Sequence[Target], ops: Sequence[OpPair], rates: Sequence[float], judge: bool,
           clock_name: str = 'process') -> Dict:
    med = statistics.median
    rows = []
    print(f'matmul probe: {med(rates) / 1e9:.1f} GMAC/s median ({min(rates) / 1e9:.1f}-{max(rates) / 1e9:.1f}) '
          f'over {len(rates)} rounds; threads={torch.get_num_threads()}, batch 1, fp32, {clock_name} clock')
    print(f'{"target":<13} {"mode":<8} {"GMAC":>6} {"ms":>8} {"floor ms":>9} {"ratio":>6} {"target":>7} {"":>4}')
    for t in targets:
        for mode in ('forward', 'train'):
            macs = t.macs * (3 if mode == 'train' else 1)
            ratio = med(t.ratios[mode])
            ok = ratio <= t.ratio
            rows.append(dict(name=t.name, mode=mode, size=t.size, macs=macs, ms=1e3 * med(t.times[mode]),
                             floor_ms=1e3 * macs / med(rates), ratio=ratio, target=t.ratio, ok=ok))
            r = rows[-1]
            verdict = ('PASS' if ok else 'MISS') if judge else '-'
            print(f'{t.name:<13} {mode:<8} {macs / 1e9:6.3f} {r["ms"]:8.1f} {r["floor_ms"]:9.1f} {ratio:6.2f} '
                  f'{"<=" + format(t.ratio, ".1f"):>7} {verdict:>4}')
    print(f'\n{"op":<16} {"mmcluster ms":>12} {"TCFormer ms":>12} {"speed-up":>9} {"target":>7} {"":>4} agree')
    for op in ops:
        a, b = med(op.times['mmcluster']), med(op.times['tcformer'])
        agree = dpc_agreement(op)
        ok = b / a >= op.speedup
        rows.append(dict(name=op.name, mode='forward', ms=1e3 * a, tcformer_ms=1e3 * b, speedup=b / a,
                         target=op.speedup, ok=ok, agreement=agree))
        verdict = ('PASS' if ok else 'MISS') if judge else '-'
        print(f'{op.name:<16} {1e3 * a:12.1f} {1e3 * b:12.1f} {b / a:8.1f}x {">=" + format(op.speedup, ".0f"):>7} '
              f'{verdict:>4} {100 * agree:5.1f}%')
    return dict(probe_gmacs=med(rates) / 1e9, rounds=len(rates), clock=clock_name, rows=rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=9, help='interleaved rounds kept (medians over them)')
    parser.add_argument('--warmup', type=int, default=1, help='rounds run first and discarded')
    parser.add_argument('--clock', choices=tuple(CLOCKS), default='process',
                        help='process CPU time (default; robust on a shared machine) or wall time')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--probe-size', type=int, default=1024, help='n of the n x n matmul probe')
    parser.add_argument('--only', nargs='+', help='names (or prefixes) of the targets / ops to run')
    parser.add_argument('--profile', choices=('forward', 'train'), help='print the profiler table instead')
    parser.add_argument('--profile-rows', type=int, default=25)
    parser.add_argument('--quick', action='store_true', help='tiny sizes, 1 round: a smoke run, no verdicts')
    parser.add_argument('--json', type=Path, help='also write the rows to this file')
    return parser.parse_args(argv)


def main(argv=None) -> Dict:
    global clock
    args = parse_args(argv)
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    targets, ops = make_targets(args.quick), make_ops(args.quick)
    if args.only:
        targets = [t for t in targets if any(t.name.startswith(o) for o in args.only)]
        ops = [o for o in ops if any(o.name.startswith(p) for p in args.only)]
    if args.quick:
        args.rounds, args.warmup, args.probe_size = 1, 0, min(args.probe_size, 256)
    prepare(targets, ops)
    if args.profile:
        profile(targets, args.profile, args.profile_rows)
        return {}
    rates = run_rounds(targets, ops, args.rounds, args.warmup, args.probe_size)
    result = report(targets, ops, rates, judge=not args.quick, clock_name=args.clock)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    main()
