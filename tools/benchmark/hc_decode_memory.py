"""Peak memory and time of HCFormer's cluster-based decoding (Eq. 5) and clustering (Eq. 3): mmcluster's forms
(labelled ``shift``) against the unfold forms of the paper's Listings 1-2.

Not a test. Every measurement runs in a fresh subprocess pinned to one thread; after the set-up (imports, inputs)
the process's peak-RSS counter is reset (``/proc/self/clear_refs``), so ``peak`` is the op's own peak above
everything allocated before it, ``extra = peak - RSS before the op`` (glibc's mmap threshold is fixed, so
freed tensors leave the RSS at once). Times are medians over ``--repeats`` calls
inside each subprocess; the table gives medians over ``--runs`` subprocesses.

* ``decode``: ``x`` = ``[B, Q, H/2, W/2]`` mask logits (Q = 100 queries), ``A`` = ``[B, 9, H, W]``;
  ``shift`` = :func:`mmcluster.models.layers.hc_decode` (on a CPU MKL's sparse product ``S X`` with a channels-last
  result; on CUDA per channel block: nearest 2x upsampling + 9 shifted ``addcmul``);
  ``unfold`` = ``F.unfold(x, 3, padding=1)`` (a 9x copy of ``x``) + einsum with the 2x2-window view of ``A``.
* ``clustering``: :class:`HCClustering` with ``C_f = C_c / 2 = 256`` (res2 -> res3 of a ResNet-50);
  ``shift`` = the module (window-major embedding, 3 batched products over strided views); ``unfold`` = the same
  embeddings, then unfold of the coarse map (9x copy), 2x2 unfold of the fine map, einsum and fold (Listing 1).

``--interleaved`` times the two forms alternately inside one process instead (no memory): on a shared machine
whose load changes between subprocesses this gives the robust time ratio.

``--backward`` times forward + backward of ``out.square().sum()`` and adds ``kept`` = RSS after the forward
minus RSS before it: the output plus what autograd keeps for the backward (the training-time cost: HCFormer
decodes 9 predictions per level and keeps them all until the backward).

    python tools/benchmark/hc_decode_memory.py                          # decode, forward, default sizes
    python tools/benchmark/hc_decode_memory.py --op clustering --backward --sizes 128x128 200x200
    python tools/benchmark/hc_decode_memory.py --interleaved --repeats 7 [--backward] [--op clustering]
"""
import argparse
from pathlib import Path

from mmcluster.utils.subprocess_measure import PROC_STATUS, median_row, run_child, run_children, write_rows

CHILD = r'''
import json, statistics, sys, time
import torch
import torch.nn.functional as F
torch.set_num_threads(1)
from mmcluster.models.layers.hc_clustering import HCClustering
from mmcluster.models.layers.hc_decode import hc_decode, hc_candidate_valid
{proc_status}
def decode_unfold(x, a):
    b, c, hc, wc = x.shape
    h, w = a.shape[-2:]
    cand = F.unfold(x, 3, padding=1).view(b, c, 9, hc, wc)
    a = F.pad(a, (0, 2 * wc - w, 0, 2 * hc - h)).view(b, 9, hc, 2, wc, 2)
    out = torch.einsum('bckhw,bkhiwj->bchiwj', cand, a)
    return out.reshape(b, c, 2 * hc, 2 * wc)[:, :, :h, :w]

def clustering_unfold(mod, fine, coarse):
    b, _, h, w = fine.shape
    hc, wc = coarse.shape[-2:]
    f = mod._embed(fine, mod.fine_norm, mod.fine_emb)  # the module's own embeddings, [B, E, H, W]
    c = mod._embed(coarse, mod.coarse_norm, mod.coarse_emb)
    e = f.shape[1]
    cand = F.unfold(c, 3, padding=1).view(b, e, 9, hc * wc)
    f = F.unfold(F.pad(f, (0, 2 * wc - w, 0, 2 * hc - h)), 2, stride=2).view(b, e, 4, hc * wc)
    sim = torch.einsum('bekn,bepn->bkpn', cand, f).reshape(b, 9 * 4, hc * wc)
    sim = F.fold(sim, (2 * hc, 2 * wc), 2, stride=2).view(b, 9, 2 * hc, 2 * wc)[:, :, :h, :w]
    logits = sim / (mod.scale.abs() + mod.eps)
    logits = logits.masked_fill(~hc_candidate_valid(h, w), torch.finfo(logits.dtype).min)
    return logits.softmax(1)

op, form, b, h, w, q, backward, repeats = {op!r}, {form!r}, {b}, {h}, {w}, {q}, {backward}, {repeats}
g = torch.Generator().manual_seed(0)
hc, wc = (h + 1) // 2, (w + 1) // 2
if op == 'decode':
    x = torch.randn(b, q, hc, wc, generator=g).requires_grad_(backward)
    a = torch.randn(b, 9, h, w, generator=g).softmax(1).requires_grad_(backward)
    fn = (lambda: hc_decode(x, a)) if form == 'shift' else (lambda: decode_unfold(x, a))
else:
    mod = HCClustering(256, 512)
    for p in mod.parameters():
        p.requires_grad_(backward)
    fine = torch.randn(b, 256, h, w, generator=g).requires_grad_(backward)
    coarse = torch.randn(b, 512, hc, wc, generator=g).requires_grad_(backward)
    fn = (lambda: mod(fine, coarse)) if form == 'shift' else (lambda: clustering_unfold(mod, fine, coarse))

kept = []

def call(fn=fn):
    if backward:
        out = fn()
        kept.append(status('VmRSS'))  # what the forward keeps for the backward (+ the output)
        out.square().sum().backward()
    else:
        with torch.no_grad():
            fn()

if {interleaved}:  # time only: both forms alternately in this one process (robust to a shared machine)
    other = (lambda: decode_unfold(x, a)) if op == 'decode' else (lambda: clustering_unfold(mod, fine, coarse))
    if op == 'decode':
        shift_fn = lambda: hc_decode(x, a)
    else:
        shift_fn = lambda: mod(fine, coarse)
    times = dict(shift=[], unfold=[])
    for _ in range(repeats):
        for name, f in (('shift', shift_fn), ('unfold', other)):
            t = time.perf_counter()
            call(f)
            times[name].append(time.perf_counter() - t)
    print(json.dumps({{k: dict(min=min(v), median=statistics.median(v)) for k, v in times.items()}}))
    sys.exit(0)

base = status('VmRSS')
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # reset VmHWM to the current RSS
t = time.perf_counter()
call()
first = time.perf_counter() - t
peak = status('VmHWM')
kept_mib = kept[0] - base if kept else 0.0
times = [first]
for _ in range(repeats - 1):
    t = time.perf_counter()
    call()
    times.append(time.perf_counter() - t)
print(json.dumps(dict(time=statistics.median(times), peak=peak, base=base, kept=kept_mib)))
'''


# a fixed mmap threshold: freed large blocks go back to the OS at once, so RSS follows live memory
MALLOC_ENV = dict(MALLOC_MMAP_THRESHOLD_='131072')


def child_code(op: str, form: str, b: int, h: int, w: int, q: int, backward: bool, repeats: int,
               interleaved: bool = False) -> str:
    return CHILD.format(op=op, form=form, b=b, h=h, w=w, q=q, backward=backward,
                        repeats=repeats, interleaved=interleaved, proc_status=PROC_STATUS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--op', choices=['decode', 'clustering'], default='decode')
    parser.add_argument('--sizes', nargs='+', default=['128x128', '256x256', '200x334'],
                        help='fine maps HxW: 128x128 / 256x256 = stride 4 of 512 / 1024 inputs, 200x334 of 800x1333')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--queries', type=int, default=100, help='channels of x for --op decode')
    parser.add_argument('--backward', action='store_true', help='time forward + backward')
    parser.add_argument('--runs', type=int, default=3, help='fresh subprocesses per measurement')
    parser.add_argument('--repeats', type=int, default=3, help='calls per subprocess (median)')
    parser.add_argument('--interleaved', action='store_true',
                        help='instead: time both forms alternately in one process per size (min / median over '
                        '--repeats rounds; no memory), the robust time ratio on a busy machine')
    parser.add_argument('--json', type=Path, help='also write the rows to this file')
    args = parser.parse_args()
    if args.interleaved:
        print(f'HCFormer {args.op}, {"forward + backward" if args.backward else "forward (no_grad)"}, '
              f'interleaved in one process, {args.repeats} rounds; min / median (ms)')
        rows = []
        for size in args.sizes:
            h, w = (int(v) for v in size.lower().split('x'))
            r = run_child(child_code(args.op, 'shift', args.batch, h, w, args.queries, args.backward, args.repeats,
                                     True), **MALLOC_ENV)
            if 'error' in r:
                print(f'{size:>10} failed: {r["error"]}')
                continue
            rows.append(dict(size=size, **r))
            print(f'{size:>10}  shift {1e3 * r["shift"]["min"]:8.1f} / {1e3 * r["shift"]["median"]:8.1f}   '
                  f'unfold {1e3 * r["unfold"]["min"]:8.1f} / {1e3 * r["unfold"]["median"]:8.1f}   '
                  f'ratio (median) {r["unfold"]["median"] / r["shift"]["median"]:.2f}x', flush=True)
        write_rows(rows, args.json)
        return
    rows = []
    mode = 'forward + backward' if args.backward else 'forward (no_grad)'
    detail = f'Q={args.queries}' if args.op == 'decode' else 'C_f=256, C_c=512, E=128'
    print(f'HCFormer {args.op}, {mode}, batch {args.batch}, {detail}, one thread; '
          f'medians over {args.runs} fresh subprocesses x {args.repeats} calls')
    print(f'{"fine HxW":>10} {"form":>7} {"time (ms)":>10} {"peak RSS (MiB)":>15} {"extra (MiB)":>12}'
          + (f' {"kept (MiB)":>11}' if args.backward else ''))
    for size in args.sizes:
        h, w = (int(v) for v in size.lower().split('x'))
        for form in ('shift', 'unfold'):
            results, error = run_children(
                child_code(args.op, form, args.batch, h, w, args.queries, args.backward, args.repeats), args.runs,
                **MALLOC_ENV)
            if error:
                print(f'{size:>10} {form:>7} failed: {error}')
                continue
            m = median_row(results, ('time', 'peak', 'kept'))
            row = dict(size=size, form=form, time_ms=1e3 * m['time'], peak=m['peak'], extra=m['extra'], kept=m['kept'])
            rows.append(row)
            kept = f' {row["kept"]:>11.0f}' if args.backward else ''
            print(f'{size:>10} {form:>7} {row["time_ms"]:>10.1f} {row["peak"]:>15.0f} {row["extra"]:>12.0f}{kept}',
                  flush=True)
    write_rows(rows, args.json)


if __name__ == '__main__':
    main()
