"""Train each ClusTR toy config for a few minutes on the CPU and print the metrics it reaches.

Not a test: the ClusTR counterpart of ``tools/benchmark/train_baselines.py`` (same protocol: ``tools/train.py
--time-budget`` (``TimeBudgetHook``): training stops after the budget, then the model is evaluated once on the
toy val split). Compare with the ResNet baselines on the same data::

    python tools/benchmark/train_clustr_toy.py [--minutes 2] [--only clustr-t_1xb32...] [--data data/toy]
    python tools/benchmark/train_baselines.py --minutes 2 --only resnet18_1xb32-toy_imagenet.py \\
        fpn_r18_1xb8-toy_ade20k-256x256.py

Results go to ``work_dirs/toy_clustr`` (``summary.json``: iterations, mean seconds per training iteration,
wall time including start-up and evaluation, and the evaluation record).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    # config: (metrics to show, the ResNet baseline on the same data)
    'clustr-t_1xb32-toy_imagenet.py': (['accuracy/top1'], 'resnet18_1xb32-toy_imagenet.py'),
    'clustr-t_fpn_1xb8-toy_ade20k-256x256.py': (['mIoU', 'aAcc'], 'fpn_r18_1xb8-toy_ade20k-256x256.py'),
    'clustr-t_retinanet_1xb4-toy_coco.py': (['coco/bbox_mAP', 'coco/bbox_mAP_50'], None),
}


def ensure_data(data: Path) -> None:
    if not (data / 'coco' / 'annotations' / 'instances_val2017.json').is_file() or \
            not (data / 'ade' / 'annotations' / 'validation').is_dir() or not (data / 'imagenet' / 'val').is_dir():
        subprocess.run([sys.executable, str(REPO / 'tools' / 'make_toy_data.py'), str(data)], check=True)


def train(config: Path, minutes: float, data: Path, work_root: Path) -> dict:
    work_dir = work_root / config.stem
    cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir),
           '--time-budget', str(minutes), '--cfg-options', 'default_hooks.logger.interval=1']
    env = dict(os.environ, MMCLUSTER_TOY_DATA=str(data))
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(work_dir / 'benchmark_train.out', 'w') as log:
        subprocess.run(cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json'))[-1:]:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train_records = [r for r in records if 'loss' in r]
    checkpoints = [int(p.stem.split('_')[1]) for p in work_dir.glob('iter_*.pth')]
    iters = max(checkpoints + [r.get('iter', 0) for r in train_records], default=0)
    iter_times = [r['time'] for r in train_records[1:] if 'time' in r]  # without the first (warm-up) iteration
    evaluation = [r for r in records if 'loss' not in r and 'lr' not in r]
    return dict(iters=iters, s_per_iter=sum(iter_times) / len(iter_times) if iter_times else float('nan'),
                wall_s=elapsed, metrics=evaluation[-1] if evaluation else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=2.0, help='training budget per config')
    parser.add_argument('--only', nargs='*', help='config file names to run (default: all)')
    parser.add_argument('--data', type=Path, default=REPO / 'data' / 'toy')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'toy_clustr')
    args = parser.parse_args()
    ensure_data(args.data)
    results = {}
    for name in args.only or CONFIGS:
        keys, baseline = CONFIGS[name]
        print(f'== {name}: training {args.minutes} min ...', flush=True)
        result = results[name] = train(REPO / 'configs' / 'clustr' / name, args.minutes, args.data, args.work_dir)
        shown = ', '.join(f'{k} {result["metrics"].get(k, float("nan")):.3f}' for k in keys)
        print(f'   {result["iters"]} iters ({result["s_per_iter"]:.1f} s/iter) in {result["wall_s"] / 60:.1f} min '
              f'(incl. start-up and evaluation): {shown}'
              + (f'  [baseline: configs/baselines/{baseline}]' if baseline else ''), flush=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / 'summary.json').write_text(json.dumps(results, indent=2))
    print(f'summary: {args.work_dir / "summary.json"}')


if __name__ == '__main__':
    main()
