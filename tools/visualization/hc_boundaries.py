"""Draw HCFormer's cluster boundaries at every hierarchical level, and the undersegmentation-error (leakage) map
against a ground-truth segmentation, as PNGs (paper Fig. 4 / Fig. III).

    python tools/visualization/hc_boundaries.py CONFIG [--checkpoint CKPT] --image IMG [--gt GT_PNG]
        [--gt-format label|coco-panoptic] [--ignore-value 0] [--max-size 512] [--out-dir work_dirs/hc_vis]

CONFIG is an HCFormer config (mmdet or mmseg; e.g. ``configs/hcformer/hcformer_r18_1xb4-toy_coco-panoptic.py``).
Without ``--checkpoint`` the model is randomly initialised (its init_cfg is not applied: nothing is
downloaded) -- useful only to check the drawing. The image is resized so that its long side is at most
``--max-size``, normalised with the config's data-preprocessor mean/std and padded to a multiple of 32.

Writes, for each level ``i`` (0 = the top clusters = stride-32 cells, then stride 16, stride 8):
``level{i}_stride{s}_boundaries.png`` (cluster boundaries in white on the image, on the stride-4 grid) and,
with ``--gt``, ``level{i}_stride{s}_leakage.png`` (pixels whose ground truth differs from their cluster's
majority label, in red, plus the ground-truth boundaries in white) and prints the undersegmentation error
(UE) and achievable segmentation accuracy (ASA) per level. ``--gt-format label``: a single-channel label PNG
(ADE20K annotations: 0 = other/void); ``coco-panoptic``: a COCO panoptic PNG (id = R + 256 G + 256^2 B,
0 = void).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def load_model(config: str, checkpoint=None):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    cfg = Config.fromfile(config)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    prep = cfg.model.get('data_preprocessor', {})
    return model, prep.get('mean', [123.675, 116.28, 103.53]), prep.get('std', [58.395, 57.12, 57.375]), \
        prep.get('bgr_to_rgb', True)


def read_gt(path: str, fmt: str) -> np.ndarray:
    from PIL import Image
    arr = np.asarray(Image.open(path))
    if fmt == 'coco-panoptic':
        arr = arr[..., :3].astype(np.int64)
        return arr[..., 0] + 256 * arr[..., 1] + 256 * 256 * arr[..., 2]
    return arr if arr.ndim == 2 else arr[..., 0]


def resize_long_side(image: np.ndarray, gt, max_size: int):
    import mmcv
    h, w = image.shape[:2]
    scale = min(1.0, max_size / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = mmcv.imresize(image, size, interpolation='bilinear')
        if gt is not None:
            gt = mmcv.imresize(gt.astype(np.int32), size, interpolation='nearest').astype(np.int64)
    return image, gt


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--checkpoint')
    parser.add_argument('--image', required=True)
    parser.add_argument('--gt')
    parser.add_argument('--gt-format', choices=['label', 'coco-panoptic'], default='label')
    parser.add_argument('--ignore-value', type=int, default=0)
    parser.add_argument('--max-size', type=int, default=512)
    parser.add_argument('--out-dir', type=Path, default=REPO / 'work_dirs' / 'hc_vis')
    args = parser.parse_args(argv)

    import mmcv
    from PIL import Image

    from mmcluster.visualization.hc_clusters import (collect_hc_partitions, draw_boundaries, draw_leakage,
                                                     undersegmentation)
    model, mean, std, bgr_to_rgb = load_model(args.config, args.checkpoint)
    image = mmcv.imread(args.image)  # BGR
    gt = read_gt(args.gt, args.gt_format) if args.gt else None
    if gt is not None and gt.shape != image.shape[:2]:
        raise SystemExit(f'ground truth {gt.shape} and image {image.shape[:2]} differ in size')
    image, gt = resize_long_side(image, gt, args.max_size)
    parts = collect_hc_partitions(model, image, mean, std, bgr_to_rgb)
    if not parts:
        raise SystemExit('the model has no clustering level (level=0)')
    rgb = np.ascontiguousarray(image[..., ::-1])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for i, labels in enumerate(parts):
        stride = 2 ** (5 - i)
        name = f'level{i}_stride{stride}'
        Image.fromarray(draw_boundaries(rgb, labels)).save(args.out_dir / f'{name}_boundaries.png')
        row = dict(clusters=int(len(np.unique(labels))))
        if gt is not None:
            score = undersegmentation(labels, gt, args.ignore_value)
            leak = draw_boundaries(draw_leakage(rgb, score['leakage']), gt)
            Image.fromarray(leak).save(args.out_dir / f'{name}_leakage.png')
            row.update(ue=score['ue'], asa=score['asa'])
        results[name] = row
        shown = ', '.join(f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items())
        print(f'{name}: {shown}')
    (args.out_dir / 'summary.json').write_text(json.dumps(results, indent=1))
    print(f'PNGs in {args.out_dir}')
    return results


if __name__ == '__main__':
    main()
