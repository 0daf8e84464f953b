"""Train the Context Clusters toy configs for a few minutes each on the CPU and print their metrics beside
the baselines' (the same task, data and budget).

Not a test: this tells what CoC-Tiny reaches on the toy data within a CPU budget, next to the ResNet-18
baselines of ``configs/baselines`` (see ``tools/benchmark/train_baselines.py``).

    python tools/benchmark/train_context_cluster_toy.py [--minutes 2] [--only coc-tiny_fpn...]
        [--baselines run|summary|none] [--data data/toy] [--work-dir work_dirs/toy_context_cluster]

Each run goes through ``tools/train.py --time-budget`` (``TimeBudgetHook``: training stops after the budget,
then the model is evaluated once on the toy val split). Baseline numbers: ``--baselines run`` (default) trains the
matching baselines the same way for the same budget; ``summary`` reuses the baseline runs of an earlier
``--baselines run`` in the same work dir, else ``work_dirs/toy_baselines/summary.json`` (from
``make baselines``); ``none`` skips them. The pairs:

* ``coc-tiny_1xb32-toy_imagenet.py``          vs ``resnet18_1xb32-toy_imagenet.py`` (top-1)
* ``coc-tiny_mask-rcnn_1xb2-toy_coco.py``     vs ``mask2former_r18_1xb4-toy_coco.py`` (box / mask mAP;
  there is no Mask R-CNN baseline, Mask2Former R-18 is the instance-segmentation baseline)
* ``coc-tiny_fpn_1xb8-toy_ade20k-256x256.py`` vs ``fpn_r18_1xb8-toy_ade20k-256x256.py`` (mIoU, aAcc)

Results go to ``<work-dir>/summary.json``.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs' / 'context_cluster'
PAIRS = {
    'coc-tiny_1xb32-toy_imagenet.py': ('resnet18_1xb32-toy_imagenet.py', ['accuracy/top1']),
    'coc-tiny_mask-rcnn_1xb2-toy_coco.py':
    ('mask2former_r18_1xb4-toy_coco.py', ['coco/bbox_mAP', 'coco/segm_mAP']),
    'coc-tiny_fpn_1xb8-toy_ade20k-256x256.py': ('fpn_r18_1xb8-toy_ade20k-256x256.py', ['mIoU', 'aAcc']),
}


def ensure_data(data: Path) -> None:
    if not (data / 'coco' / 'annotations' / 'panoptic_val2017.json').is_file():
        subprocess.run([sys.executable, str(REPO / 'tools' / 'make_toy_data.py'), str(data)], check=True)


def read_run(work_dir: Path) -> dict:
    """Iterations trained (from the final ``iter_N.pth``) and the last evaluation record of a run."""
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json'))[-1:]:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    iters = max((int(p.stem.split('_')[1]) for p in work_dir.glob('iter_*.pth')), default=0)
    evaluation = [r for r in records if 'loss' not in r and 'lr' not in r]
    return dict(iters=iters, metrics=evaluation[-1] if evaluation else {})


def train(config: Path, minutes: float, data: Path, work_root: Path) -> dict:
    work_dir = work_root / config.stem
    shutil.rmtree(work_dir, ignore_errors=True)  # no stale checkpoints / logs of an earlier run
    cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir),
           '--time-budget', str(minutes)]
    env = dict(os.environ, MMCLUSTER_TOY_DATA=str(data), PYTHONPATH=f'{REPO}:{os.environ.get("PYTHONPATH", "")}')
    env.setdefault('OMP_NUM_THREADS', '1')  # stable on the shared 2-vCPU machines (REFERENCE section 8)
    start = time.perf_counter()
    log = work_root / f'{config.stem}.log'
    work_root.mkdir(parents=True, exist_ok=True)
    with open(log, 'w') as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f'{config.name} failed (exit {code}), see {log}')
    return dict(read_run(work_dir), wall_s=time.perf_counter() - start)


def baseline_results(mode: str, names, minutes: float, data: Path, work_root: Path) -> dict:
    if mode == 'none':
        return {}
    if mode == 'summary':  # runs of an earlier `--baselines run` in this work dir, else `make baselines`
        summary = REPO / 'work_dirs' / 'toy_baselines' / 'summary.json'
        found = json.loads(summary.read_text()) if summary.is_file() else {}
        for name in names:
            if (work_root / 'baselines' / Path(name).stem).is_dir():
                found[name] = read_run(work_root / 'baselines' / Path(name).stem)
        return found
    results = {}
    for name in names:
        print(f'== baseline {name}: training {minutes} min ...', flush=True)
        results[name] = train(REPO / 'configs' / 'baselines' / name, minutes, data, work_root / 'baselines')
    return results


def fmt(value) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.3f}'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=2.0, help='training budget per config')
    parser.add_argument('--only', nargs='*', help='CoC config file names to run (default: all three)')
    parser.add_argument('--baselines', choices=['run', 'summary', 'none'], default='run')
    parser.add_argument('--data', type=Path, default=REPO / 'data' / 'toy')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'toy_context_cluster')
    args = parser.parse_args(argv)
    ensure_data(args.data)
    configs = args.only or list(PAIRS)
    results = {}
    for name in configs:
        print(f'== {name}: training {args.minutes} min ...', flush=True)
        results[name] = train(CONFIG_DIR / name, args.minutes, args.data, args.work_dir)
        r = results[name]
        shown = ', '.join(f'{k} {fmt(r["metrics"].get(k))}' for k in PAIRS[name][1])
        print(f'   {r["iters"]} iters in {r["wall_s"] / 60:.1f} min (incl. start-up and evaluation): {shown}',
              flush=True)
    baselines = baseline_results(args.baselines, [PAIRS[n][0] for n in configs], args.minutes, args.data,
                                 args.work_dir)
    print(f'\n{"CoC-Tiny config":42s} {"metric":14s} {"CoC":>8s} {"baseline":>9s}  iters CoC / baseline '
          f'({args.minutes} min each)')
    for name in configs:
        base_name, keys = PAIRS[name]
        base = baselines.get(base_name, {})
        for k in keys:
            print(f'{name:42s} {k:14s} {fmt(results[name]["metrics"].get(k)):>8s} '
                  f'{fmt(base.get("metrics", {}).get(k)):>9s}  {results[name]["iters"]} / '
                  f'{base.get("iters", "n/a")}  [{base_name}]')
    summary = dict(minutes=args.minutes, context_cluster=results, baselines=baselines)
    (args.work_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(f'summary: {args.work_dir / "summary.json"}')
    return summary


if __name__ == '__main__':
    main()
