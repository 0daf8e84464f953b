"""Endurance: train clustering models for hundreds of iterations at ever-changing input sizes and print how the
process's memory (RSS) and the loss evolve.

Not a test (nothing is asserted on time). What it shows: memory stays flat after a warm-up although every
iteration has a new input size, i.e. nothing grows with the sizes seen (size-keyed caches such as Context
Clusters' region layouts, ``functools.lru_cache(maxsize=128)`` in ``mmcluster/models/layers/context_cluster.py``;
DPC-kNN / HCFormer buffers that depend on the token count; autograd graphs kept alive by a stored record), and
the loss stays finite. Each model is built from its toy config (the real model, data preprocessor and optimiser
wrapper) and trained through ``model.train_step`` (what mmengine's Runner calls) on synthetic batches: random
images of a random height and width every iteration, with random labels (classifiers) or blocky random label
maps (segmentors). One thread; every model in its own subprocess so that its RSS is its own.

    python tools/benchmark/endurance.py                          # coc, clustr, hcformer: 300 iterations each
    python tools/benchmark/endurance.py --models coc --iters 50 --json out.json
    python tools/benchmark/endurance.py --models clustr --trim   # RSS without glibc's free heap (leak or allocator?)
    python tools/benchmark/endurance.py --models clustr --trim --sizes cycle   # memory kept per size, or per step?

Columns: ``rss@warm`` RSS (MiB) after the warm-up iterations (``--warmup``, default 20% of the run), ``rss@end``
at the end, ``growth`` their difference, ``slope`` a least-squares fit of RSS over the iterations after the
warm-up (MiB per 100 iterations), ``max`` the largest RSS seen, ``sizes`` the distinct input sizes trained on,
``finite`` whether every loss was finite (the exit status is 1 otherwise), ``loss first / last`` means of the
first / last 10 iterations.
"""
import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]

#: name -> (config, task, (min side, max side), batch size)
MODELS: Dict[str, Tuple[str, str, Tuple[int, int], int]] = {
    'coc': ('configs/context_cluster/coc-tiny_1xb32-toy_imagenet.py', 'cls', (48, 160), 2),
    'clustr': ('configs/clustr/clustr-t_1xb32-toy_imagenet.py', 'cls', (48, 160), 2),
    'hcformer': ('configs/hcformer/hcformer_r18_1xb8-toy_ade20k-256x256.py', 'seg', (64, 192), 2),
}


def malloc_trim() -> None:
    """Ask glibc to return its free heap memory to the system (no-op where glibc is absent)."""
    import ctypes
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def _build(config: str):
    """Model (train mode) and optimiser wrapper of a toy config, built in the config's scope."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS as ROOT, init_default_scope

    import mmcluster  # noqa: F401  (registration)
    cfg = Config.fromfile(str(REPO / config))
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if cfg.get('default_scope') == 'mmseg':  # any size: pad each batch to a multiple of 32, not to the crop size
        cfg.model.data_preprocessor.pop('size', None)
        cfg.model.data_preprocessor['size_divisor'] = 32
    model = ROOT.build(cfg.model)
    model.init_weights()
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper), cfg


def _batch(task: str, size: Tuple[int, int], batch: int, num_classes: int, gen):
    import torch
    h, w = size
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen) for _ in range(batch)]
    samples = []
    for _ in range(batch):
        if task == 'cls':
            from mmpretrain.structures import DataSample
            samples.append(DataSample().set_gt_label(int(torch.randint(num_classes, (1, ), generator=gen))))
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            blocks = torch.randint(num_classes, (1, max(h // 16, 1), max(w // 16, 1)), generator=gen)
            seg = torch.nn.functional.interpolate(blocks[None].float(), size=(h, w), mode='nearest')[0].long()
            sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
            sample.gt_sem_seg = PixelData(data=seg)
            samples.append(sample)
    return dict(inputs=images, data_samples=samples)


def _num_classes(cfg, task: str) -> int:
    head = cfg.model.head if task == 'cls' else cfg.model.decode_head
    return int(head.num_classes)


#: how the input size changes between iterations: a new random one each time, ``CYCLE`` random sizes repeated
#: (memory kept per distinct size stops growing after the first cycle), or always the same one (no per-size
#: memory at all: what still grows grows per iteration)
SIZE_MODES = ('random', 'cycle', 'fixed')
CYCLE = 10


def run_model(name: str, iters: int, warmup: int, seed: int = 0, trim: bool = False, sizes: str = 'random') -> Dict:
    """Train ``name`` in this process for ``iters`` iterations; the record of RSS and losses.

    With ``trim`` glibc's free heap is returned to the system before each reading (:func:`malloc_trim`), so the
    RSS counts memory still in use, not what the allocator keeps for later (which varies with the input sizes).
    ``sizes``: one of :data:`SIZE_MODES`.
    """
    if sizes not in SIZE_MODES:
        raise ValueError(f'sizes must be one of {SIZE_MODES}, got {sizes!r}')
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config, task, (lo, hi), batch = MODELS[name]
    model, optim_wrapper, cfg = _build(config)
    classes = _num_classes(cfg, task)
    gen = torch.Generator().manual_seed(seed)
    draws = CYCLE if sizes == 'cycle' else 1 if sizes == 'fixed' else iters
    schedule = [tuple(int(v) for v in torch.randint(lo, hi + 1, (2, ), generator=gen)) for _ in range(draws)]
    rss: List[float] = []
    losses: List[float] = []
    seen = set()
    for it in range(iters):
        size = schedule[it % draws]
        seen.add(size)
        log_vars = model.train_step(_batch(task, size, batch, classes, gen), optim_wrapper)
        losses.append(float(torch.as_tensor(log_vars['loss']).detach()))
        if trim:
            malloc_trim()
        rss.append(rss_mib())
    return dict(model=name, config=config, iters=iters, warmup=warmup, sizes=len(seen), rss=rss, losses=losses,
                trim=trim, size_mode=sizes)


def summarise(record: Dict) -> Dict:
    """The columns of the table (see the module docstring)."""
    rss, losses, warm = record['rss'], record['losses'], min(record['warmup'], len(record['rss']) - 1)
    tail = rss[warm:]
    xs = list(range(len(tail)))
    slope = 0.0
    if len(tail) > 1:
        mx, my = sum(xs) / len(xs), sum(tail) / len(tail)
        var = sum((x - mx)**2 for x in xs)
        slope = 100 * sum((x - mx) * (y - my) for x, y in zip(xs, tail)) / var if var else 0.0
    k = max(1, min(10, len(losses) // 2))
    return dict(model=record['model'], iters=record['iters'], sizes=record['sizes'], rss_warm=rss[warm],
                rss_end=rss[-1], growth=rss[-1] - rss[warm], slope=slope, rss_max=max(rss),
                finite=all(math.isfinite(v) for v in losses), loss_first=sum(losses[:k]) / k,
                loss_last=sum(losses[-k:]) / k)


def _child(name: str, iters: int, warmup: int, trim: bool, sizes: str = 'random') -> Dict:
    """Run one model in a fresh subprocess (its own RSS); its record, or ``dict(error=...)``."""
    cmd = [sys.executable, __file__, '--child', name, '--iters', str(iters), '--warmup', str(warmup),
           '--sizes', sizes]
    cmd += ['--trim'] if trim else []
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return dict(model=name, error=lines[-1] if lines else f'exit status {out.returncode}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--warmup', type=int, default=None, help='iterations before the reference RSS '
                        '(default: 20%% of --iters)')
    parser.add_argument('--json', type=Path, help='also write the records (RSS and loss per iteration) here')
    parser.add_argument('--trim', action='store_true', help="glibc malloc_trim(0) before every RSS reading: "
                        "memory in use, without the allocator's free heap")
    parser.add_argument('--sizes', choices=SIZE_MODES, default='random',
                        help=f'input size per iteration: a new random one (default), {CYCLE} random sizes cycled, '
                        'or one fixed size')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iters < 2:
        parser.error(f'--iters must be at least 2, got {args.iters}')
    warmup = args.warmup if args.warmup is not None else max(1, args.iters // 5)
    if args.child:
        print(json.dumps(run_model(args.child, args.iters, warmup, trim=args.trim, sizes=args.sizes)))
        return 0
    what = dict(random='a new random input size every iteration', cycle=f'{CYCLE} random input sizes cycled',
                fixed='one fixed input size')[args.sizes]
    print(f'endurance: {args.iters} iterations per model, {what}, one thread; '
          f'reference RSS after {warmup} warm-up iterations' + (', malloc_trim before each reading' if args.trim
                                                                  else ''))
    header = (f'{"model":>9} {"iters":>5} {"sizes":>5} {"rss@warm":>9} {"rss@end":>8} {"growth":>7} '
              f'{"slope/100it":>11} {"max":>7} {"finite":>6} {"loss first / last":>18}')
    print(header)
    records, failed = [], False
    for name in args.models:
        record = _child(name, args.iters, warmup, args.trim, args.sizes)
        records.append(record)
        if 'error' in record:
            print(f'{name:>9} ERROR: {record["error"]}', flush=True)
            failed = True
            continue
        s = summarise(record)
        failed |= not s['finite']
        print(f'{s["model"]:>9} {s["iters"]:>5} {s["sizes"]:>5} {s["rss_warm"]:>9.1f} {s["rss_end"]:>8.1f} '
              f'{s["growth"]:>+7.1f} {s["slope"]:>+11.2f} {s["rss_max"]:>7.1f} {str(s["finite"]):>6} '
              f'{s["loss_first"]:>8.3f} / {s["loss_last"]:<8.3f}', flush=True)
    print('RSS in MiB; growth = rss@end - rss@warm; slope: least-squares MiB per 100 iterations after the warm-up')
    if args.json:
        args.json.write_text(json.dumps(records))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
