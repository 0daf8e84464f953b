"""Draw whatever clustering an mmcluster model computes on an image: one panel per cluster record.

    python tools/visualization/cluster_map.py CONFIG CHECKPOINT|none IMAGE [--out OUT.png] [--shape H W]
        [--alpha 0.5] [--seed 0] [--select NAME_SUBSTRING ...] [--heads E ...] [--mode auto|feat|predict]
        [--cols N] [--no-centers] [--gt GT.png [--gt-format label|coco-panoptic] [--ignore-value 0]]
        [--allow-missing] [--cfg-options k=v ...]

* CONFIG: any config of the three toolkits whose model contains mmcluster clustering modules (every module
  that computes a clustering records it, :mod:`mmcluster.models.utils.cluster_record`): Context Clusters
  (one record per token mixer, one map per head), ClusTR (one per clustered scale of each attention),
  HCFormer (one per level, composed into partitions of the finest grid), and any later model.
* CHECKPOINT: a checkpoint of that model, a backbone checkpoint (e.g. from ``tools/model_converters/``), or
  ``none`` for the modules' own random initialisation (seeded by ``--seed``; ``Pretrained`` init_cfgs are
  dropped, nothing is downloaded).
* IMAGE: read as the toolkits read it (BGR), optionally resized to ``--shape H W``, then given to the
  model's data preprocessor (colour order, mean / std, padding). The model runs its feature path
  (``extract_feat``: backbone + neck) when all its clustering modules sit there, else its full ``predict``
  path (``--mode`` forces one).

The PNG is a grid: the image, then one panel per record (and head, and hierarchy level) with every cluster
in its own colour blended by ``--alpha``, white boundaries, black centre marks where the model records
centres, and a numbered title; ``--gt`` adds after each panel its leakage (pixels whose ground truth differs
from their cluster's majority, red, with the ground-truth boundaries) and prints the undersegmentation error
and achievable segmentation accuracy (:mod:`.segmentation_metrics`). ``OUT.json`` lists the panels.
"""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .drawing import GAP, compose_grid, draw_boundaries, draw_mask, overlay_clusters, with_title
from .panels import Panel, record_panels
from .segmentation_metrics import GT_FORMATS, read_gt, undersegmentation

__all__ = ['ClusterMap', 'draw_cluster_map', 'cluster_map', 'parse_args', 'main']


@dataclass
class ClusterMap:
    """The drawing: ``canvas`` (``[H', W', 3]`` uint8 RGB grid), the ``panels``, the grid's ``cols``, the
    model ``mode`` that ran, the ``input_hw`` of the model, and where the PNG / JSON went."""
    canvas: np.ndarray
    panels: List[Panel]
    cols: int
    mode: Optional[str] = None
    input_hw: Optional[tuple] = None
    out: Optional[str] = None

    def summary(self) -> Dict[str, Any]:
        return dict(mode=self.mode, input_hw=None if self.input_hw is None else list(self.input_hw),
                    cols=self.cols, panels=[dict(index=i + 1, **p.summary()) for i, p in enumerate(self.panels)])


def draw_cluster_map(image_rgb: np.ndarray, records, input_hw: Optional[Sequence[int]] = None,
                     select: Optional[Sequence[str]] = None, heads: Optional[Sequence[int]] = None,
                     alpha: float = 0.5, seed: int = 0, centers: bool = True, gt: Optional[np.ndarray] = None,
                     ignore_value: Optional[int] = None, cols: Optional[int] = None,
                     titles: bool = True) -> ClusterMap:
    """Panels of cluster records over an image, composed into one grid.

    Args:
        image_rgb: ``[H, W, 3]`` uint8, the image the model saw (top-left part of its input).
        records: :class:`~mmcluster.models.utils.cluster_record.ClusterRecord` s of one forward pass.
        input_hw: the size of the model's input tensor; default the image's.
        select, heads, centers: see :func:`~mmcluster.visualization.panels.record_panels`.
        alpha: weight of the cluster colours.
        seed: palette seed.
        gt: ``[H, W]`` ground-truth segment ids: adds a leakage panel after every panel and the scores
            ``ue`` / ``asa`` to the panels.
        ignore_value: ground-truth value that counts nowhere.
        cols: panels per row of the grid (default: about square).
        titles: draw a numbered title strip on every panel.
    """
    image_hw = tuple(image_rgb.shape[:2])
    if gt is not None and tuple(gt.shape) != image_hw:
        raise ValueError(f'ground truth {tuple(gt.shape)} and image {image_hw} differ in size')
    panels = record_panels(records, input_hw or image_hw, image_hw, select=select, heads=heads, centers=centers)
    if not panels:
        raise ValueError('nothing to draw: no cluster record was selected')
    images = [with_title(image_rgb, 'image') if titles else image_rgb]
    for i, panel in enumerate(panels, start=1):
        drawn = overlay_clusters(image_rgb, panel.labels, alpha, seed, centers=panel.centers)
        images.append(with_title(drawn, f'{i} {_strip_title(panel)}') if titles else drawn)
        if gt is not None:
            score = undersegmentation(panel.labels, gt, ignore_value)
            panel.scores.update(ue=score['ue'], asa=score['asa'])
            leak = draw_boundaries(draw_mask(image_rgb, score['leakage']), gt)
            images.append(with_title(leak, f'{i} leakage UE {score["ue"]:.3f}') if titles else leak)
    canvas, cols = compose_grid(images, cols, GAP)
    return ClusterMap(canvas=canvas, panels=panels, cols=cols, input_hw=tuple(input_hw or image_hw))


def _strip_title(panel: Panel) -> str:
    """A short title for the strip over a panel (the full one is in the JSON and the printed list): the last
    two parts of the module name, then head, step and level."""
    text = '.'.join(panel.record.split('.')[-2:])
    for value, tag in ((panel.head, 'h'), (panel.step or None, 's'), (panel.depth or None, 'up')):
        if value is not None:
            text += f' {tag}{value}'
    return text


def read_image(path: str, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """BGR ``uint8`` image, resized to ``shape`` (``H W``, or one side for a square) if given."""
    import mmcv
    img = mmcv.imread(str(path), channel_order='bgr')
    if img is None:
        raise FileNotFoundError(f'cannot read the image {path}')
    if shape:
        h, w = (shape[0], shape[0]) if len(shape) == 1 else shape[:2]
        img = mmcv.imresize(img, (int(w), int(h)))
    return np.ascontiguousarray(img)


def cluster_map(config, checkpoint: str, image: str, out: Optional[str] = None,
                shape: Optional[Sequence[int]] = None, alpha: float = 0.5, seed: int = 0,
                select: Optional[Sequence[str]] = None, heads: Optional[Sequence[int]] = None, mode: str = 'auto',
                cols: Optional[int] = None, centers: bool = True, gt: Optional[str] = None,
                gt_format: str = 'label', ignore_value: Optional[int] = None, allow_missing: bool = False,
                cfg_options: Optional[dict] = None) -> ClusterMap:
    """Build the config's model, load ``checkpoint`` (or ``'none'``), run it on ``image``, draw (see the module
    docstring); write ``out`` (PNG) and ``out`` with ``.json`` when ``out`` is given."""
    from .inference import FEATURE_PATH, build_model, choose_mode, collect_records, load_config, load_weights, \
        prepare_inputs
    cfg = load_config(config, cfg_options)
    model = build_model(cfg, seed)
    mode = choose_mode(model, mode)
    if str(checkpoint).lower() != 'none':
        load_weights(model, str(checkpoint), FEATURE_PATH if mode == 'feat' else None, allow_missing)
    image_bgr = read_image(image, shape)
    gt_ids = None
    if gt is not None:
        gt_ids = read_gt(gt, gt_format)
        if shape:
            import mmcv
            gt_ids = mmcv.imresize(gt_ids.astype(np.int32), image_bgr.shape[1::-1], interpolation='nearest')
            gt_ids = gt_ids.astype(np.int64)
    inputs, samples = prepare_inputs(model, image_bgr, str(image))
    records, mode = collect_records(model, inputs, samples, mode)
    result = draw_cluster_map(np.ascontiguousarray(image_bgr[..., ::-1]), records, tuple(inputs.shape[-2:]), select,
                              heads, alpha, seed, centers, gt_ids, ignore_value, cols)
    result.mode = mode
    if out is not None:
        from PIL import Image
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result.canvas).save(path, format='PNG')
        path.with_suffix('.json').write_text(json.dumps(result.summary(), indent=1))
        result.out = str(path)
    return result


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Draw the clusters an mmcluster model computes on an image')
    parser.add_argument('config', help='config of a model with mmcluster clustering modules')
    parser.add_argument('checkpoint', help='model or backbone checkpoint, or "none" (random weights)')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', default=None, help='output PNG (default: <image>_clusters.png); a JSON beside it')
    parser.add_argument('--shape', type=int, nargs='+', default=None, help='resize the image to H W first')
    parser.add_argument('--alpha', type=float, default=0.5, help='weight of the cluster colours (1: colours only)')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights and of the palette')
    parser.add_argument('--select', nargs='+', default=None, metavar='NAME_SUBSTRING',
                        help='draw only the records whose module name contains one of these')
    parser.add_argument('--heads', type=int, nargs='+', default=None, help='heads of per-head records (default: all)')
    parser.add_argument('--mode', choices=['auto', 'feat', 'predict'], default='auto',
                        help='feature path (backbone + neck) or full predict path (auto: where the clusterings are)')
    parser.add_argument('--cols', type=int, default=None, help='panels per row')
    parser.add_argument('--no-centers', action='store_true', help='do not mark recorded cluster centres')
    parser.add_argument('--gt', default=None, help='ground-truth segmentation PNG: leakage panels, UE and ASA')
    parser.add_argument('--gt-format', choices=GT_FORMATS, default='label')
    parser.add_argument('--ignore-value', type=int, default=None, help='ground-truth value that counts nowhere')
    parser.add_argument('--allow-missing', action='store_true',
                        help='warn instead of failing when the checkpoint lacks weights of the modules that run')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> ClusterMap:
    args = parse_args(argv)
    out = args.out or str(Path(args.image).with_suffix('')) + '_clusters.png'
    result = cluster_map(args.config, args.checkpoint, args.image, out, args.shape, args.alpha, args.seed,
                         args.select, args.heads, args.mode, args.cols, not args.no_centers, args.gt, args.gt_format,
                         args.ignore_value, args.allow_missing, args.cfg_options)
    print(f'{len(result.panels)} cluster maps ({result.mode} path, input {result.input_hw[0]}x{result.input_hw[1]}):')
    for i, panel in enumerate(result.panels, start=1):
        scores = ''.join(f', {k} {v:.4f}' for k, v in panel.scores.items())
        print(f'  {i:3d} {panel.title}: {panel.num_clusters} clusters on a {panel.grid[0]}x{panel.grid[1]} grid'
              f'{scores}')
    print(f'-> {result.out} (+ {Path(result.out).with_suffix(".json").name})')
    return result


if __name__ == '__main__':
    main()
