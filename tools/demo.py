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
import warnings
from pathlib import Path
from typing import List

import numpy as np

from mmcluster.utils.toy_run import REPO, default_toy_data, ensure_toy_data, run_config

DEMO_CONFIGS = [
    REPO / 'configs' / 'context_cluster' / 'fpn_coc-tiny-4_1xb8-toy_ade20k-256x256.py',
    REPO / 'configs' / 'baselines' / 'fpn_r18_1xb8-toy_ade20k-256x256.py',
]


def default_config() -> Path:
    return next(p for p in DEMO_CONFIGS if p.is_file())


def draw_predictions(config: Path, checkpoint: Path, data: Path, out_png: Path,
                     num_images: int = 6) -> None:
    """One PNG: rows of image | ground truth | prediction for the first validation images."""
    import mmcluster  # noqa: F401
    from mmseg.apis import inference_model, init_model
    from PIL import Image

    os.environ['MMCLUSTER_TOY_DATA'] = str(data)
    with warnings.catch_warnings():  # mmseg's notices about its own defaults, not about this model
        for message in ('Default ``avg_non_ignore`` is False', '``build_loss`` would be deprecated soon'):
            warnings.filterwarnings('ignore', message=message, category=UserWarning)
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
    parser.add_argument('--data', type=Path, default=None, help='toy data root (default: $MMCLUSTER_TOY_DATA '
                        'or data/toy; generated if missing)')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / 'demo')
    args = parser.parse_args()
    config = (args.config or default_config()).resolve()
    work_dir = args.work_dir.resolve()

    data = ensure_toy_data(args.data or default_toy_data(), tasks=('ade', ))
    print(f'training {config.relative_to(REPO)} for {args.minutes} min on the CPU (log: {work_dir}) ...',
          flush=True)
    # one compute thread: on a shared 2-core machine OpenMP spinning makes two threads far slower;
    # mmengine's log goes to the file, the progress bar (stderr) to you
    run = run_config(config, work_dir, minutes=args.minutes, data=data, progress=True,
                     threads=int(os.environ.get('OMP_NUM_THREADS', 1)), log=work_dir / 'demo_train.out',
                     env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if run.checkpoint is None or not run.metrics:
        raise SystemExit(f'no checkpoint or evaluation in {work_dir}, see {run.log}')
    metrics = run.metrics
    metrics_file = work_dir / 'metrics.json'
    metrics_file.write_text(json.dumps(metrics, indent=2))
    png = work_dir / 'predictions.png'
    draw_predictions(config, run.checkpoint, data, png)

    logs = sorted(work_dir.glob('*/*.log'))
    print('\n' + '=' * 72)
    print(f'model       {config.relative_to(REPO)}  ({run.iters} iterations in {args.minutes} min)')
    print(f'metrics     mIoU {metrics.get("mIoU", float("nan")):.2f}  aAcc '
          f'{metrics.get("aAcc", float("nan")):.2f}  mAcc {metrics.get("mAcc", float("nan")):.2f}'
          f'  (toy ADE20K val, mmseg IoUMetric)')
    print(f'metrics at  {metrics_file}')
    print(f'log at      {logs[-1] if logs else run.log}')
    print(f'checkpoint  {run.checkpoint}')
    print(f'predictions {png}  (image | ground truth | prediction)')


if __name__ == '__main__':
    main()
