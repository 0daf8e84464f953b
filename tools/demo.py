"""`make demo`: toy data -> a few minutes of CPU training -> evaluation -> a PNG of predictions.

    python tools/demo.py [--minutes 4] [--config CONFIG] [--data data/toy] [--work-dir work_dirs/demo]

The default config is a clustering model (Context Clusters + Semantic FPN on the toy ADE20K-layout
data) when it is present, else the ResNet-18 Semantic FPN baseline. Training runs through mmengine's
Runner (``tools/train.py``) with a progress bar and stops after ``--minutes``; the model is then
evaluated with mmseg's IoUMetric on the toy validation split, and a PNG shows image / ground truth /
prediction for a few validation images.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIGS = [
    REPO / 'configs' / 'context_cluster' / 'coc-tiny_fpn_1xb8-toy_ade20k-256x256.py',
    REPO / 'configs' / 'baselines' / 'fpn_r18_1xb8-toy_ade20k-256x256.py',
]


def default_config() -> Path:
    return next(p for p in DEMO_CONFIGS if p.is_file())


def ensure_data(data: Path) -> None:
    if (data / 'ade' / 'annotations' / 'validation').is_dir():
        print(f'toy data: {data} (present)')
        return
    print(f'toy data: generating {data} ...', flush=True)
    subprocess.run([sys.executable, str(REPO / 'tools' / 'make_toy_data.py'), str(data)], check=True)


def train(config: Path, minutes: float, work_dir: Path, env: dict) -> Path:
    cmd = [
        sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir),
        '--time-budget', str(minutes)
    ]
    print(f'training {config.relative_to(REPO)} for {minutes} min on the CPU '
          f'(log: {work_dir}) ...', flush=True)
    log = work_dir / 'demo_train.out'
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(log, 'w') as out:  # mmengine's log to the file; the progress bar (stderr) to you
        code = subprocess.run(cmd, env=dict(env, PYTHONWARNINGS='ignore'), stdout=out).returncode
    if code != 0:
        raise SystemExit(f'training failed (exit {code}), see {log}')
    checkpoints = sorted(work_dir.glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    if not checkpoints:
        raise SystemExit(f'no checkpoint in {work_dir}')
    return checkpoints[-1]


def evaluation_record(work_dir: Path) -> dict:
    paths = sorted(work_dir.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in paths[-1].read_text().splitlines() if line.strip()]
    return [r for r in records if 'loss' not in r and 'lr' not in r][-1]


def draw_predictions(config: Path, checkpoint: Path, data: Path, out_png: Path,
                     num_images: int = 6) -> None:
    """One PNG: rows of image | ground truth | prediction for the first validation images."""
    import mmcluster  # noqa: F401
    from mmseg.apis import inference_model, init_model
    from PIL import Image

    os.environ['MMCLUSTER_TOY_DATA'] = str(data)
    model = init_model(str(config), str(checkpoint), device='cpu')
    palette = np.asarray(model.dataset_meta['palette'], np.uint8)
    image_dir = data / 'ade' / 'images' / 'validation'
    label_dir = data / 'ade' / 'annotations' / 'validation'
    rows: List[np.ndarray] = []
    for path in sorted(image_dir.glob('*.jpg'))[:num_images]:
        image = np.asarray(Image.open(path).convert('RGB'))
        label = np.asarray(Image.open(label_dir / f'{path.stem}.png')).astype(np.int64) - 1
        pred = inference_model(model, str(path)).pred_sem_seg.data[0].numpy()
        gt_rgb = np.where(label[..., None] >= 0, palette[label.clip(0)], 0)
        pred_rgb = palette[pred]
        row = np.concatenate([image, (0.5 * image + 0.5 * gt_rgb).astype(np.uint8),
                              (0.5 * image + 0.5 * pred_rgb).astype(np.uint8)], axis=1)
        rows.append(np.asarray(Image.fromarray(row).resize((3 * 256, 256))))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out_png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=4.0)
    parser.add_argument('--config', type=Path, default=None)
    parser.add_argument('--data', type=Path, default=REPO / 'data' / 'toy')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'demo')
    args = parser.parse_args()
    config = (args.config or default_config()).resolve()
    data, work_dir = args.data.resolve(), args.work_dir.resolve()

    ensure_data(data)
    # one compute thread: on a shared 2-core machine OpenMP spinning makes two threads far slower
    env = dict(os.environ, MMCLUSTER_TOY_DATA=str(data))
    env.setdefault('OMP_NUM_THREADS', '1')
    checkpoint = train(config, args.minutes, work_dir, env)
    metrics = evaluation_record(work_dir)
    metrics_file = work_dir / 'metrics.json'
    metrics_file.write_text(json.dumps(metrics, indent=2))
    png = work_dir / 'predictions.png'
    draw_predictions(config, checkpoint, data, png)

    logs = sorted(work_dir.glob('*/*.log'))
    print('\n' + '=' * 72)
    print(f'model       {config.relative_to(REPO)}')
    print(f'metrics     mIoU {metrics.get("mIoU", float("nan")):.2f}  aAcc '
          f'{metrics.get("aAcc", float("nan")):.2f}  mAcc {metrics.get("mAcc", float("nan")):.2f}'
          f'  (toy ADE20K val, mmseg IoUMetric)')
    print(f'metrics at  {metrics_file}')
    print(f'log at      {logs[-1] if logs else work_dir}')
    print(f'checkpoint  {checkpoint}')
    print(f'predictions {png}  (image | ground truth | prediction)')


if __name__ == '__main__':
    main()
