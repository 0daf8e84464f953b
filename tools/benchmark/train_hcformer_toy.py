"""Train the HCFormer toy configs for a few minutes each on the CPU and print PQ / AP / mIoU beside the
baselines' (same task, data and budget).

Not a test: this tells what HCFormer reaches on the toy data within a CPU budget, next to the ResNet-18
baselines of ``configs/baselines``:

* ``hcformer_r18_1xb4-toy_coco-panoptic.py`` vs ``mask2former_r18_1xb4-toy_coco-panoptic.py`` (PQ, mask AP):
  the same model and schedule except HCFormer's clustering in place of the pixel decoder;
* ``hcformer_r18_1xb4-toy_coco.py``          vs ``mask2former_r18_1xb4-toy_coco.py`` (mask / box AP);
* ``hcformer_r18_1xb8-toy_ade20k-256x256.py`` vs ``fpn_r18_1xb8-toy_ade20k-256x256.py`` (mIoU; there is no
  Mask2Former ADE20K toy baseline, Semantic FPN R-18 is the semantic baseline).

    python tools/benchmark/train_hcformer_toy.py [--minutes 3] [--only hcformer_r18_1xb8...]
        [--baselines run|summary|none] [--data data/toy] [--work-dir work_dirs/toy_hcformer]

Each run goes through ``tools/train.py`` with ``TimeBudgetHook`` (training stops after the budget, then the
model is evaluated once on the toy val split). ``--baselines summary`` reads
``work_dirs/toy_baselines/summary.json`` (``make baselines``) instead of training them. Results go to
``<work-dir>/summary.json``.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAIRS = {
    'hcformer_r18_1xb4-toy_coco-panoptic.py':
    ('mask2former_r18_1xb4-toy_coco-panoptic.py', ['coco_panoptic/PQ', 'coco/segm_mAP', 'coco/bbox_mAP']),
    'hcformer_r18_1xb4-toy_coco.py': ('mask2former_r18_1xb4-toy_coco.py', ['coco/segm_mAP', 'coco/bbox_mAP']),
    'hcformer_r18_1xb8-toy_ade20k-256x256.py': ('fpn_r18_1xb8-toy_ade20k-256x256.py', ['mIoU', 'aAcc']),
}


def ensure_data(data: Path) -> None:
    if not (data / 'coco' / 'annotations' / 'panoptic_val2017.json').is_file():
        subprocess.run([sys.executable, str(REPO / 'tools' / 'make_toy_data.py'), str(data)], check=True)


def budget_config(config: Path, minutes: float, out_dir: Path) -> Path:
    """A config inheriting ``config`` that trains ``minutes`` (TimeBudgetHook) and then validates once
    (a file, because mmengine's ``--cfg-options`` cannot parse a dict inside a list)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f'budget_{config.name}'
    path.write_text(f"""_base_ = {str(config.resolve())!r}
custom_hooks = [dict(type='TimeBudgetHook', minutes={minutes}, progress=False)]
train_cfg = dict(max_iters=1000000, val_interval=1000000)
default_hooks = dict(checkpoint=dict(interval=1000000))
""")
    return path


def train(config: Path, minutes: float, data: Path, work_root: Path) -> dict:
    work_dir = work_root / config.stem
    cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), str(budget_config(config, minutes, work_root)),
           '--work-dir', str(work_dir)]
    env = dict(os.environ, MMCLUSTER_TOY_DATA=str(data), PYTHONPATH=f'{REPO}:{os.environ.get("PYTHONPATH", "")}')
    log = work_root / f'{config.stem}.log'
    start = time.perf_counter()
    with open(log, 'w') as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f'{config.name} failed (exit {code}), see {log}')
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json'))[-1:]:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    iters = max((r.get('iter', 0) for r in records if 'loss' in r), default=0)
    evaluation = [r for r in records if 'loss' not in r and 'lr' not in r]
    return dict(iters=iters, wall_s=time.perf_counter() - start, metrics=evaluation[-1] if evaluation else {})


def fmt(value) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:.3f}'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=3.0, help='training budget per config')
    parser.add_argument('--only', nargs='*', help='HCFormer toy config names (default: all three)')
    parser.add_argument('--baselines', choices=['run', 'summary', 'none'], default='run')
    parser.add_argument('--data', type=Path, default=REPO / 'data' / 'toy')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'toy_hcformer')
    args = parser.parse_args(argv)
    ensure_data(args.data)
    names = args.only or list(PAIRS)
    results, baselines = {}, {}
    if args.baselines == 'summary':
        summary = REPO / 'work_dirs' / 'toy_baselines' / 'summary.json'
        baselines = json.loads(summary.read_text()) if summary.is_file() else {}
    for name in names:
        runs = [(name, REPO / 'configs' / 'hcformer' / name, results)]
        if args.baselines == 'run':
            runs.append((PAIRS[name][0], REPO / 'configs' / 'baselines' / PAIRS[name][0], baselines))
        for label, config, store in runs:
            print(f'== {label}: training {args.minutes} min ...', flush=True)
            store[label] = train(config, args.minutes, args.data, args.work_dir)
            r = store[label]
            shown = ', '.join(f'{k} {fmt(r["metrics"].get(k))}' for k in PAIRS[name][1])
            print(f'   {r["iters"]} iters in {r["wall_s"] / 60:.1f} min (incl. start-up and evaluation): {shown}',
                  flush=True)
    print(f'\n{"config":<45} {"iters":>6}  metrics')
    for name in names:
        for label, store in ((name, results), (PAIRS[name][0], baselines)):
            if label in store:
                r = store[label]
                shown = ', '.join(f'{k} {fmt(r["metrics"].get(k))}' for k in PAIRS[name][1])
                print(f'{label:<45} {r["iters"]:>6}  {shown}')
    (args.work_dir / 'summary.json').write_text(json.dumps(dict(hcformer=results, baselines=baselines), indent=2))
    print(f'summary: {args.work_dir / "summary.json"}')
    return results


if __name__ == '__main__':
    main()
