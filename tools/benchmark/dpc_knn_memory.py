"""Peak memory and time of DPC-kNN against the number of tokens: dense N x N form vs mmcluster's chunked form.

Not a test. Every measurement runs in a fresh subprocess (one thread), so its peak RSS (``VmHWM``) belongs to
that measurement alone; the table gives medians over ``--runs`` subprocesses (``--big-runs`` for N > 16k).
The input is a smooth random feature map (Gaussian noise averaged over 5x5 windows, ``C`` channels, batch 1),
like a stage-1 map, clustered into ``M = ceil(N / 16)`` clusters (ClusTR stage 1, lambda = 16).

    python tools/benchmark/dpc_knn_memory.py                     # N = 1k, 4k, 16k (both), 66.8k (chunked)
    python tools/benchmark/dpc_knn_memory.py --sizes 32x32 64x64 --runs 5

``peak`` is the process's peak RSS, ``extra`` = peak minus the RSS just before the call (torch, the input).
"""
import argparse
from pathlib import Path

from mmcluster.utils.subprocess_measure import PROC_STATUS, median_row, run_children, write_rows

REPO = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, math, time
import torch
torch.set_num_threads(1)
import importlib.util
spec = importlib.util.spec_from_file_location('dpc_knn', {path!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)  # the op alone: no toolkit imports in the measured process
{proc_status}
h, w, c, form = {h}, {w}, {c}, {form!r}
g = torch.Generator().manual_seed(0)
x = torch.nn.functional.avg_pool2d(torch.randn(1, c, h + 4, w + 4, generator=g), 5, 1)
x = x.flatten(2).transpose(1, 2).contiguous()
m = math.ceil(h * w / 16)
fn = mod.dpc_knn_dense if form == 'dense' else mod.dpc_knn
base = status('VmRSS')
t = time.perf_counter()
idx, centers = fn(x, m)
dt = time.perf_counter() - t
print(json.dumps(dict(time=dt, peak=status('VmHWM'), base=base)))
'''


def child_code(h: int, w: int, c: int, form: str) -> str:
    return CHILD.format(path=str(REPO / 'mmcluster/models/layers/dpc_knn.py'), h=h, w=w, c=c, form=form,
                        proc_status=PROC_STATUS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', default=['32x32', '64x64', '128x128', '200x334'],
                        help='token maps HxW (N = H*W); 200x334 = stage 1 of an 800x1333 image')
    parser.add_argument('--channels', type=int, default=64)
    parser.add_argument('--runs', type=int, default=5, help='subprocesses per measurement (N <= 16384)')
    parser.add_argument('--big-runs', type=int, default=1, help='subprocesses per measurement for N > 16384')
    parser.add_argument('--dense-max', type=int, default=16384, help='largest N for the dense N x N form')
    parser.add_argument('--json', type=Path, help='also write the rows to this file')
    args = parser.parse_args()
    rows = []
    print(f'DPC-kNN, C={args.channels}, batch 1, M=ceil(N/16), one thread; medians over fresh subprocesses')
    print(f'{"N":>7} {"form":>8} {"runs":>4} {"time (s)":>10} {"peak RSS (MiB)":>15} {"extra (MiB)":>12}')
    for size in args.sizes:
        h, w = (int(v) for v in size.lower().split('x'))
        n = h * w
        for form in ('dense', 'chunked'):
            if form == 'dense' and n > args.dense_max:
                continue
            runs = args.runs if n <= 16384 else args.big_runs
            results, error = run_children(child_code(h, w, args.channels, form), runs)
            if error:
                print(f'{n:>7} {form:>8} failed: {error}')
                continue
            row = dict(N=n, form=form, runs=runs, **median_row(results))
            rows.append(row)
            print(f'{n:>7} {form:>8} {runs:>4} {row["time"]:>10.3f} {row["peak"]:>15.0f} {row["extra"]:>12.0f}',
                  flush=True)
    write_rows(rows, args.json)


if __name__ == '__main__':
    main()
