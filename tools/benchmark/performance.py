"""Context Clusters, ClusTR and DPC-kNN against the machine's floor, for inference and the training step.

Issue 14, item 1 (Context Clusters, ClusTR, DPC-kNN). Everything is measured **in one run, on one thread, batch
1, fp32**, in interleaved rounds (:func:`mmcluster.utils.timing.interleaved_ms`, the benchmark's timer): every
round times the matmul probe once and every model / operation once (order reversed every other round), after
one warm-up call each, so all of them see the same machine state; the table gives medians over the rounds.
Every timed call follows one untimed call of the same model (``--rewarm 1``): a model's weights and
activations (tens of MB) stay in the last-level cache in a loop serving it, but not after another model ran,
which made CoC-Tiny's forward 15-30 % slower than in a plain loop (``--rewarm 0`` measures that cold start).

* **Floor** of a model: its multiply-adds (``MACs``, counted by ``tools/get_flops.py``'s counter, whose "FLOPs"
  are multiply-adds) divided by the fp32 matmul rate of this run, measured by a large ``torch.matmul`` probe
  (``n x n @ n x n`` = ``n^3`` multiply-adds). The floor of a **training step** (forward + backward) is
  ``3 x`` the forward MACs: the backward of every linear map costs two products of the forward's size (the
  gradients of its input and of its weight).
* **Ratio** = the median time over the floor computed from the probe's median rate.
* **Clock**: the measuring thread's CPU time by default (``--clock cpu``; one torch thread does all the work):
  on a shared machine the wall clock also counts the time other processes hold the core, the CPU time only what
  this thread ran (it still suffers from a busy machine's shared caches and hyper-threads, the probe too).
  ``--clock wall`` on an idle machine.
* **DPC-kNN**: mmcluster's :func:`~mmcluster.models.layers.dpc_knn.dpc_knn` against TCFormer's formulation
  (:func:`tcformer_dpc_knn`, written here from the TCFormer paper's description: one dense ``N x N`` distance
  matrix, batched) on ClusTR stage-1 inputs (``C = 64``, ``M = N / 16``), with the speed-up
  ``time(TCFormer) / time(mmcluster)``. The assignment is not differentiable (no backward): the training step
  runs the same clustering, so one row covers both.

    python tools/benchmark/performance.py                        # the table of issue 14 (about 2 minutes)
    python tools/benchmark/performance.py --rounds 31 --json perf.json
    python tools/benchmark/performance.py --only coc-tiny --profile forward   # where the time goes
    python tools/benchmark/performance.py --quick                # seconds: tiny sizes, no targets judged
    python tools/benchmark/performance.py --compiled             # + inference compiled by inductor (freezing)
    python tools/benchmark/performance.py --compiled-train       # + the training step compiled by inductor
    python tools/benchmark/performance.py --device cuda --batch 128 --precision fp16   # issue 14 item 4 (a GPU)

``--device cuda`` / ``--precision {fp32,fp16,bf16}`` / ``--batch N`` measure the same rows on a GPU, under
autocast, at a larger batch (issue 14, item 4: batch 128 at 224^2). The probe then runs on that device in that
precision, so the floor is the model's multiply-adds (``batch x`` those of one image) at the device's matmul rate
in the measured precision; every row also gives images per second, and CoC's rows their ratio to the published
throughput (the CoC paper's Table 1: a V100, batch 128). Times are wall-clock after ``torch.cuda.synchronize()``.
The floor-ratio verdicts are those of issue 14's setting (CPU, batch 1, fp32); other settings print no verdict.
On a CPU, ``--precision bf16`` runs (autocast) but is a correctness smoke test only: these CPUs run bf16 ~90x
slower than fp32.

``--compiled`` adds a ``compiled`` row per model: its inference compiled with ``torch.compile`` (inductor,
``freezing``: the weights become constants that inductor pre-packs for oneDNN and folds), against the same floor
and target as the eager forward. Compiling takes about a minute per model, printed before the table.
``--compiled-train`` adds a ``train-compiled`` row: the training step with the model compiled by inductor with
static sizes (mmengine's ``compile=dict(dynamic=False)``; ``docs/deployment.md`` says why not dynamic sizes),
against the training step's floor; its outputs and gradients are first checked against eager's.

``--profile {forward,train}`` prints :mod:`torch.profiler`'s operator table (self CPU time) for every selected
target instead of the timing table. The numbers depend on the machine and its load: compare ratios measured in
the same run, never absolute times across runs.
"""
import argparse
import copy
import importlib.util
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmcluster.benchmark.measure import PRECISIONS, check_device, machine_description, resolve_clock, synchronize
from mmcluster.deployment.compile_check import (COMPILE_MODES, disable_randomness, forward_backward,
                                                 largest_grad_difference, restore_randomness, torch_compile_mode)
from mmcluster.utils.timing import CLOCKS, interleaved_ms

REPO = Path(__file__).resolve().parents[2]
#: autocast dtype of each ``--precision`` (None: no autocast)
AUTOCAST_DTYPES = PRECISIONS['cuda']
#: the timed modes of a target, and those timed against the training step's floor (3x the forward's MACs)
MODES = ('forward', 'train', 'compiled', 'train-compiled')
TRAINING_MODES = ('train', 'train-compiled')
#: published inference throughput, images per second (the CoC paper's Table 1: a V100, batch 128, 224^2)
PUBLISHED_IMG_S = {'coc-tiny': 518.4, 'coc-small': 513.0, 'coc-medium': 325.2}


@dataclass
class Setting:
    """Where and how the models run: device, autocast precision, batch size."""
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))
    precision: str = 'fp32'
    batch: int = 1

    @property
    def is_issue_setting(self) -> bool:
        """Issue 14's floor targets are defined on a CPU at batch 1 in fp32."""
        return self.device.type == 'cpu' and self.precision == 'fp32' and self.batch == 1

    def autocast(self):
        dtype = AUTOCAST_DTYPES[self.precision]
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def sync(self) -> None:
        synchronize(self.device)

    def device_name(self) -> str:
        return machine_description(self.device)


CPU_FP32 = Setting()


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
    density = density + torch.rand(density.shape, generator=torch.Generator().manual_seed(0)).to(x.device) * 1e-6
    denser = density[:, None, :] > density[:, :, None]  # [b, i, j]: j denser than i
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    delta = torch.where(denser, dist, dist_max).min(dim=-1).values
    centers = torch.topk(delta * density, num_clusters, dim=-1).indices  # [B, M]
    to_centers = torch.gather(dist, 1, centers[..., None].expand(B, num_clusters, N))  # [B, M, N]
    idx = to_centers.argmin(dim=1)
    idx.scatter_(1, centers, torch.arange(num_clusters, device=x.device).expand(B, num_clusters))
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
    compiled: Optional[Callable] = None  # the inference compiled by inductor (``--compiled``)
    compiled_train: Optional[Callable] = None  # the model compiled for its training step (``--compiled-train``)
    input: Optional[torch.Tensor] = None
    ms: Dict[str, float] = field(default_factory=dict)  # mode -> median milliseconds


@dataclass
class OpPair:
    """mmcluster's DPC-kNN and TCFormer's formulation on the same ``[1, h*w, C]`` tokens."""
    name: str
    hw: int
    channels: int
    speedup: float
    input: Optional[torch.Tensor] = None
    ms: Dict[str, float] = field(default_factory=dict)  # implementation -> median milliseconds


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
def probe(n: int, setting: Setting = CPU_FP32) -> Callable[[], None]:
    """The matmul probe: one ``n x n @ n x n`` product (``n^3`` multiply-adds) on the setting's device, in its
    precision (under the same autocast as the models)."""
    a, b = torch.randn(n, n, device=setting.device), torch.randn(n, n, device=setting.device)

    def run() -> None:
        with setting.autocast():
            torch.matmul(a, b)
        setting.sync()
    return run


def forward_step(model: nn.Module, x: torch.Tensor, setting: Setting = CPU_FP32) -> None:
    model.eval()
    with torch.no_grad(), setting.autocast():
        model(x)
    setting.sync()


def train_step(model: nn.Module, x: torch.Tensor, setting: Setting = CPU_FP32,
               compiled: Optional[Callable] = None) -> None:
    """Forward + backward of a scalar loss over every output, then the gradients freed, as an optimiser's
    ``zero_grad(set_to_none=True)`` does after its step. Gradients left in place (hundreds of MB over the
    measured models) made every later forward in the process 10-30 % slower. Under autocast the loss is summed
    in float32 (the backward runs outside autocast, as in a training loop). ``compiled``: the model compiled
    by ``torch.compile`` (``--compiled-train``), called instead of ``model``."""
    model.train()
    with setting.autocast():
        outs = (model if compiled is None else compiled)(x)
        loss = sum(o.float().mean() for o in outs)
    loss.backward()
    for p in model.parameters():
        p.grad = None
    setting.sync()


def compiled_step(model: nn.Module, compiled: Callable, x: torch.Tensor, setting: Setting = CPU_FP32) -> None:
    model.eval()  # the training step left it in training mode; dynamo's guards would recompile
    with torch.no_grad(), setting.autocast():
        compiled(x)
    setting.sync()


def compile_inference(model: nn.Module, x: torch.Tensor, setting: Setting = CPU_FP32,
                      mode: Optional[str] = None) -> Tuple[Callable, float]:
    """``model``'s inference compiled by inductor with ``freezing`` (``torch.compile`` ``mode``: None for the
    default, e.g. ``'max-autotune-no-cudagraphs'``), and the seconds the first call took."""
    import torch._inductor.config as inductor_config
    model.eval()
    compiled = torch.compile(model, dynamic=False, mode=mode)
    start = time.perf_counter()
    with inductor_config.patch(freezing=True), torch.no_grad(), setting.autocast():
        eager = model(x)
        out = compiled(x)
    tol = 1e-4 if setting.precision == 'fp32' else 2e-2  # fp16 / bf16: both forms round at every operator
    for a, b in zip(eager, out):  # a wrong compiled model must not give a fast row
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    return compiled, time.perf_counter() - start


def compile_training(model: nn.Module, x: torch.Tensor, setting: Setting = CPU_FP32,
                     mode: Optional[str] = None) -> Tuple[Callable, float]:
    """``model``'s training step compiled by inductor with static sizes (as mmengine's ``Runner`` with
    ``compile=dict(dynamic=False)``), and the seconds its first compile took. Its outputs and every parameter's
    gradient are checked against eager's first, with dropout and stochastic depth switched off (compiled code
    draws other random numbers); with them switched back on, the timing rounds' warm-up call recompiles."""
    saved = disable_randomness(model)
    reference = copy.deepcopy(model).train()
    model.train()
    compiled = torch.compile(model, dynamic=False, mode=mode)
    try:
        with setting.autocast():
            eager = forward_backward(reference, x)
            start = time.perf_counter()
            out = forward_backward(compiled, x)
            seconds = time.perf_counter() - start
        tol = 1e-4 if setting.precision == 'fp32' else 2e-2
        for a, b in zip(eager, out):  # a wrong compiled model must not give a fast row
            torch.testing.assert_close(b, a, rtol=tol, atol=tol)
        grad_diff = largest_grad_difference(reference, model)
        if grad_diff > tol:
            raise AssertionError(f'compiled training step: gradients differ from eager by {grad_diff:.1e} (relative)')
    finally:
        restore_randomness(saved)
        model.zero_grad(set_to_none=True)
    return compiled, seconds


def prepare(targets: Sequence[Target], ops: Sequence[OpPair], compiled: bool = False,
            setting: Setting = CPU_FP32, compile_mode: Optional[str] = None, compiled_train: bool = False) -> None:
    get_flops = _load_get_flops()
    torch.manual_seed(0)
    for t in targets:
        t.model = t.build().eval()
        # multiply-adds of one image, counted on the CPU (the counter traces the model), times the batch
        t.macs = setting.batch * int(get_flops.count_flops(t.model, (torch.randn(1, 3, t.size, t.size), ))['flops'])
        t.model.to(setting.device)
        t.input = torch.randn(setting.batch, 3, t.size, t.size, device=setting.device)
        if compiled:
            t.compiled, seconds = compile_inference(t.model, t.input, setting, compile_mode)
            print(f'{t.name}: compiled (inductor, freezing, mode {compile_mode or "default"}) in {seconds:.0f} s; '
                  'outputs equal to eager')
        if compiled_train:
            t.compiled_train, seconds = compile_training(t.model, t.input, setting, compile_mode)
            print(f'{t.name}: training step compiled (inductor, static sizes, mode {compile_mode or "default"}) in '
                  f'{seconds:.0f} s; outputs and gradients equal to eager')
    for op in ops:
        op.input = smooth_tokens(op.hw, op.channels).to(setting.device)


def mmcluster_dpc(op: OpPair) -> None:
    from mmcluster.models.layers.dpc_knn import dpc_knn
    dpc_knn(op.input, math.ceil(op.input.shape[1] / 16))


def run_rounds(targets: Sequence[Target], ops: Sequence[OpPair], rounds: int, warmup: int, probe_n: int,
               clock: str = 'cpu', rewarm: int = 1, setting: Setting = CPU_FP32) -> float:
    """Time the probe, every target's forward and training step and every op pair in the same interleaved
    rounds (:func:`mmcluster.utils.timing.interleaved_ms`); store the medians; return the probe's rate
    (multiply-adds per second). DPC-kNN runs in float32 whatever the precision (it computes in float32)."""
    fns: Dict[str, Callable[[], object]] = {'probe': probe(probe_n, setting)}
    for t in targets:
        fns[f'{t.name}/forward'] = lambda t=t: forward_step(t.model, t.input, setting)
        fns[f'{t.name}/train'] = lambda t=t: train_step(t.model, t.input, setting)
        if t.compiled is not None:
            fns[f'{t.name}/compiled'] = lambda t=t: compiled_step(t.model, t.compiled, t.input, setting)
        if t.compiled_train is not None:
            fns[f'{t.name}/train-compiled'] = lambda t=t: train_step(t.model, t.input, setting, t.compiled_train)
    for op in ops:
        m = math.ceil(op.input.shape[1] / 16)
        fns[f'{op.name}/mmcluster'] = lambda op=op: (mmcluster_dpc(op), setting.sync())
        fns[f'{op.name}/tcformer'] = lambda op=op, m=m: (tcformer_dpc_knn(op.input, m), setting.sync())
    ms = interleaved_ms(fns, rounds=rounds, warmup=warmup, clock=clock, rewarm=rewarm)
    for t in targets:
        t.ms = {mode: ms[f'{t.name}/{mode}'] for mode in MODES if f'{t.name}/{mode}' in ms}
    for op in ops:
        op.ms = {impl: ms[f'{op.name}/{impl}'] for impl in ('mmcluster', 'tcformer')}
    return probe_n**3 / (ms['probe'] / 1e3)


def dpc_agreement(op: OpPair) -> float:
    """Fraction of tokens whose cluster has the same centre token in both formulations on the benchmark input
    (cluster ids are score ranks, so two near-equal scores swap the ids of whole clusters). A sanity check,
    not a test: ``torch.cdist`` rounds the distances differently and TCFormer adds noise, which can flip
    near-ties of the densities and scores."""
    from mmcluster.models.layers.dpc_knn import dpc_knn
    m = math.ceil(op.input.shape[1] / 16)
    (idx_a, cen_a), (idx_b, cen_b) = dpc_knn(op.input, m), tcformer_dpc_knn(op.input, m)
    return float((torch.gather(cen_a, 1, idx_a) == torch.gather(cen_b, 1, idx_b)).float().mean())


def profile(targets: Sequence[Target], mode: str, rows: int, setting: Setting = CPU_FP32) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    cuda = setting.device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    key = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    for t in targets:
        t.model.train(mode == 'train')
        fn = forward_step if mode == 'forward' else train_step
        for _ in range(2):
            fn(t.model, t.input, setting)
        with torch_profile(activities=activities) as prof:
            for _ in range(3):
                fn(t.model, t.input, setting)
        print(f'\n=== {t.name} {t.size}x{t.size} {mode}, batch {setting.batch}, {setting.precision} '
              f'(3 calls, {key.replace("_total", "").replace("_", " ")} time) ===')
        print(prof.key_averages().table(sort_by=key, row_limit=rows))


# ----------------------------------------------------------------------------------------------- report
def report(targets: Sequence[Target], ops: Sequence[OpPair], rate: float, rounds: int, judge: bool,
           clock_name: str = 'cpu', rewarm: int = 1, setting: Setting = CPU_FP32) -> Dict:
    """Print the table and return its rows. ``img/s`` is images per second of the row's call (training
    steps included); for CoC it is also compared with the published throughput (``PUBLISHED_IMG_S``)."""
    rows = []
    print(f'device: {setting.device_name()}; matmul probe: {rate / 1e9:.1f} GMAC/s '
          f'(median of {rounds} interleaved rounds, {rewarm} untimed call(s) before each timed one); '
          f'threads={torch.get_num_threads()}, batch {setting.batch}, {setting.precision}, {clock_name} clock')
    print(f'{"target":<13} {"mode":<14} {"GMAC":>8} {"ms":>8} {"floor ms":>9} {"ratio":>6} {"target":>7} {"":>4} '
          f'{"img/s":>8}')
    for t in targets:
        for mode in t.ms:
            macs = t.macs * (3 if mode in TRAINING_MODES else 1)
            floor_ms = 1e3 * macs / rate
            ratio = t.ms[mode] / floor_ms
            ok = ratio <= t.ratio
            img_s = 1e3 * setting.batch / t.ms[mode]
            rows.append(dict(name=t.name, mode=mode, size=t.size, batch=setting.batch, precision=setting.precision,
                             macs=macs, ms=t.ms[mode], floor_ms=floor_ms, ratio=ratio, target=t.ratio, ok=ok,
                             img_s=img_s))
            verdict = ('PASS' if ok else 'MISS') if judge and setting.is_issue_setting else '-'
            print(f'{t.name:<13} {mode:<14} {macs / 1e9:8.3f} {t.ms[mode]:8.1f} {floor_ms:9.1f} {ratio:6.2f} '
                  f'{"<=" + format(t.ratio, ".1f"):>7} {verdict:>4} {img_s:8.1f}')
    published = [(t, PUBLISHED_IMG_S[t.name]) for t in targets
                 if t.name in PUBLISHED_IMG_S and t.size == 224 and 'forward' in t.ms]  # the published size
    if published:
        print('\npublished inference throughput (CoC paper, Table 1: one V100, batch 128, fp32), against this run\'s '
              'forward (and compiled) rows:')
        for t, ref in published:
            for mode in ('forward', 'compiled'):
                if mode in t.ms:
                    img_s = 1e3 * setting.batch / t.ms[mode]
                    print(f'  {t.name:<11} {mode:<8} {img_s:8.1f} img/s = {img_s / ref:5.2f}x the published '
                          f'{ref:.1f} img/s')
    print(f'\n{"op":<16} {"mmcluster ms":>12} {"TCFormer ms":>12} {"speed-up":>9} {"target":>7} {"":>4} agree')
    for op in ops:
        a, b = op.ms['mmcluster'], op.ms['tcformer']
        agree = dpc_agreement(op)
        ok = b / a >= op.speedup
        rows.append(dict(name=op.name, mode='forward', ms=a, tcformer_ms=b, speedup=b / a, target=op.speedup,
                         ok=ok, agreement=agree))
        verdict = ('PASS' if ok else 'MISS') if judge else '-'
        print(f'{op.name:<16} {a:12.1f} {b:12.1f} {b / a:8.1f}x {">=" + format(op.speedup, ".0f"):>7} '
              f'{verdict:>4} {100 * agree:5.1f}%')
    return dict(probe_gmacs=rate / 1e9, rounds=rounds, rewarm=rewarm, clock=clock_name, rows=rows,
                device=setting.device.type, device_name=setting.device_name(), precision=setting.precision,
                batch=setting.batch)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=9, help='interleaved rounds kept (medians over them)')
    parser.add_argument('--warmup', type=int, default=1, help='rounds run first and discarded')
    parser.add_argument('--rewarm', type=int, default=1,
                        help='untimed calls of a target right before its timed call in every round (0: each is '
                        'timed with the previously run model\'s data in the caches)')
    parser.add_argument('--clock', choices=tuple(CLOCKS), default=None,
                        help="the measuring thread's CPU time (default with one CPU thread; robust on a shared "
                        'machine) or wall time (default otherwise; the only choice on a GPU)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--precision', choices=tuple(AUTOCAST_DTYPES), default='fp32',
                        help='autocast precision of the models and the probe (bf16 on these CPUs: a correctness '
                        'smoke only, ~90x slower than fp32)')
    parser.add_argument('--batch', type=int, default=1, help='images per call (issue 14 item 4: 128 on a GPU)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--probe-size', type=int, default=None,
                        help='n of the n x n matmul probe (default 1024 on a CPU; 8192 on a GPU, where a smaller '
                        'product is too short to reach the peak rate)')
    parser.add_argument('--only', nargs='+', help='names (or prefixes) of the targets / ops to run')
    parser.add_argument('--profile', choices=('forward', 'train'), help='print the profiler table instead')
    parser.add_argument('--profile-rows', type=int, default=25)
    parser.add_argument('--quick', action='store_true', help='tiny sizes, 1 round: a smoke run, no verdicts')
    parser.add_argument('--compiled', action='store_true',
                        help='also time the inference compiled by inductor with freezing (about a minute of '
                        'compilation per model)')
    parser.add_argument('--compiled-train', action='store_true',
                        help='also time the training step compiled by inductor (static sizes; outputs and gradients '
                        'checked against eager first; about two minutes of compilation per model)')
    parser.add_argument('--compile-mode', choices=COMPILE_MODES, default='default',
                        help='torch.compile mode of --compiled (max-autotune: inductor also benchmarks its own GEMM '
                        'kernels against the library ones; longer compiles)')
    parser.add_argument('--json', type=Path, help='also write the rows to this file')
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f'--batch must be >= 1, got {args.batch}')
    if args.probe_size is None:
        args.probe_size = 8192 if args.device == 'cuda' else 1024
    try:
        args.clock = resolve_clock(args.clock, args.device, args.threads)
    except ValueError as e:
        parser.error(str(e))
    return args


def main(argv=None) -> Dict:
    args = parse_args(argv)
    setting = Setting(check_device(args.device), args.precision, args.batch)
    torch.set_num_threads(args.threads)
    targets, ops = make_targets(args.quick), make_ops(args.quick)
    if args.only:
        targets = [t for t in targets if any(t.name.startswith(o) for o in args.only)]
        ops = [o for o in ops if any(o.name.startswith(p) for p in args.only)]
    if args.quick:
        args.rounds, args.warmup, args.probe_size = 1, 0, min(args.probe_size, 256)
    prepare(targets, ops, compiled=args.compiled, setting=setting, compile_mode=torch_compile_mode(args.compile_mode),
            compiled_train=args.compiled_train)
    if args.profile:
        profile(targets, args.profile, args.profile_rows, setting)
        return {}
    rate = run_rounds(targets, ops, args.rounds, args.warmup, args.probe_size, args.clock, args.rewarm, setting)
    result = report(targets, ops, rate, args.rounds, judge=not args.quick, clock_name=args.clock,
                    rewarm=args.rewarm, setting=setting)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    main()
