"""Train each toy-data baseline for a few minutes on the CPU and print the metrics it reaches.

Not a test: this tells what a baseline reaches on the toy data within a CPU budget, the yardstick
for the clustering models' toy configs.

    python tools/benchmark/train_baselines.py [--minutes 3] [--only mask2former_r18...] [--data data/toy]

Each run goes through ``tools/train.py`` with ``TimeBudgetHook`` (training stops after the budget,
then the model is evaluated once on the toy val split); results go to ``work_dirs/toy_baselines``.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASELINES = {
    'mask2former_r18_1xb4-toy_coco-panoptic.py': ['coco_panoptic/PQ', 'coco/bbox_mAP', 'coco/segm_mAP'],
    'mask2former_r18_1xb4-toy_coco.py': ['coco/bbox_mAP', 'coco/segm_mAP'],
    'deformable-detr_r18_1xb4-toy_coco.py': ['coco/bbox_mAP', 'coco/bbox_mAP_50'],
    'fpn_r18_1xb8-toy_ade20k-256x256.py': ['mIoU', 'aAcc'],
    'resnet18_1xb32-toy_imagenet.py': ['accuracy/top1'],
}


def ensure_data(data: Path) -> None:
    if not (data / 'coco' / 'annotations' / 'panoptic_val2017.json').is_file():
        subprocess.run([sys.executable, str(REPO / 'tools' / 'make_toy_data.py'), str(data)],
                       check=True)


def train(config: str, minutes: float, data: Path, work_root: Path) -> dict:
    work_dir = work_root / Path(config).stem
    cmd = [
        sys.executable, str(REPO / 'tools' / 'train.py'), str(REPO / 'configs' / 'baselines' / config),
        '--work-dir', str(work_dir), '--time-budget', str(minutes)
    ]
    env = dict(os.environ, MMCLUSTER_TOY_DATA=str(data))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json'))[-1:]:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    iters = max((r.get('iter', 0) for r in records if 'loss' in r), default=0)
    evaluation = [r for r in records if 'loss' not in r and 'lr' not in r]
    return dict(iters=iters, wall_s=elapsed, metrics=evaluation[-1] if evaluation else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=3.0, help='training budget per baseline')
    parser.add_argument('--only', nargs='*', help='config file names to run (default: all)')
    parser.add_argument('--data', type=Path, default=REPO / 'data' / 'toy')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'toy_baselines')
    args = parser.parse_args()
    ensure_data(args.data)
    results = {}
    for config in args.only or BASELINES:
        print(f'== {config}: training {args.minutes} min ...', flush=True)
        results[config] = train(config, args.minutes, args.data, args.work_dir)
        result = results[config]
        shown = ', '.join(f'{k} {result["metrics"].get(k, float("nan")):.3f}'
                          for k in BASELINES[config])
        print(f'   {result["iters"]} iters in {result["wall_s"] / 60:.1f} min (incl. start-up and '
              f'evaluation): {shown}', flush=True)
    (args.work_dir / 'summary.json').write_text(json.dumps(results, indent=2))
    print(f'summary: {args.work_dir / "summary.json"}')


if __name__ == '__main__':
    main()
