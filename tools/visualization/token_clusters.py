"""Draw the DPC-kNN token clusters of a ClusTR layer on an image (the paper's Fig. A3, appendix A6).

    python tools/visualization/token_clusters.py CONFIG CHECKPOINT IMAGE --stage S [--layer J] [--scale I] \\
        --out out.png [--size SHORT_SIDE] [--alpha 0.5] [--no-centers] [--seed 0] [--cfg-options k=v ...]

* CONFIG: any mmcluster / mmdet / mmseg / mmpretrain config whose model contains a ``ClusTR`` backbone (found
  wherever it sits in ``model``, usually ``model.backbone``). Only that backbone is built and run.
* CHECKPOINT: a checkpoint of that config's model (keys ``backbone.*``; other keys are ignored), a backbone-only
  checkpoint (raw ``ClusTR`` keys), or ``none`` for the backbone's own random init (seeded by ``--seed``).
* IMAGE: read as RGB; optionally resized to a short side of ``--size`` (keeping the ratio), then normalised with
  the mean / std of the config's data preprocessor (``model.data_preprocessor`` or the top-level
  ``data_preprocessor`` of mmpretrain configs), in RGB or BGR order as that preprocessor does
  (``bgr_to_rgb`` / ``to_rgb``). No padding: ClusTR accepts any size.
* ``--stage`` (0-based: 0 = stride 4, ..., 2 = the paper's "third stage" of Fig. A3), ``--layer`` (block of the
  stage, default -1 = the last), ``--scale`` (index among the layer's *clustered* scales, i.e. reduction ratios
  > 1 with fewer clusters than tokens; default 0 = the largest ratio, the coarsest clustering).

The PNG has the size of the (resized) image: every token painted with its cluster's colour (blended with the
image by ``--alpha``), white cluster boundaries and black centre marks (:func:`mmcluster.visualization.
draw_token_clusters`). A one-line summary (grid, ratio, number of clusters) is printed.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import mmcluster  # noqa: E402,F401  (registration)
from mmengine.config import Config, DictAction  # noqa: E402

from mmcluster.visualization import collect_clusters, draw_token_clusters  # noqa: E402

CLUSTR_TYPES = ('ClusTR', 'mmcluster.ClusTR')
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the token clusters of a ClusTR layer on an image')
    parser.add_argument('config', help='config whose model contains a ClusTR backbone')
    parser.add_argument('checkpoint', help="model or backbone checkpoint, or 'none' for random weights")
    parser.add_argument('image', help='input image')
    parser.add_argument('--stage', type=int, required=True, help='0-based stage (2 = the paper\'s Fig. A3)')
    parser.add_argument('--layer', type=int, default=-1, help='block of the stage (default: the last)')
    parser.add_argument('--scale', type=int, default=0,
                        help='index among the clustered scales of the layer (0 = largest reduction ratio)')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--size', type=int, default=None, help='resize the image to this short side first')
    parser.add_argument('--alpha', type=float, default=0.5, help='weight of the cluster colours')
    parser.add_argument('--no-centers', action='store_true', help='do not mark the centre tokens')
    parser.add_argument('--seed', type=int, default=0, help='random init (checkpoint none) and palette seed')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def find_clustr(model_cfg, path: str = '') -> Optional[Tuple[str, dict]]:
    """``(dotted path, cfg)`` of the first ClusTR module config inside ``model_cfg`` (depth first)."""
    if isinstance(model_cfg, dict):
        if model_cfg.get('type') in CLUSTR_TYPES:
            return path, model_cfg
        for key, value in model_cfg.items():
            found = find_clustr(value, f'{path}.{key}' if path else key)
            if found:
                return found
    elif isinstance(model_cfg, (list, tuple)):
        for i, value in enumerate(model_cfg):
            found = find_clustr(value, f'{path}.{i}')
            if found:
                return found
    return None


def preprocess_settings(cfg: Config) -> Tuple[np.ndarray, np.ndarray, bool]:
    """``(mean, std, rgb)`` of the config's data preprocessor; ``rgb``: the network sees RGB channels."""
    dp = cfg.model.get('data_preprocessor', None) or cfg.get('data_preprocessor', None) or {}
    mean = np.asarray(dp.get('mean', None) or IMAGENET_MEAN, np.float32)
    std = np.asarray(dp.get('std', None) or IMAGENET_STD, np.float32)
    rgb = bool(dp.get('bgr_to_rgb', dp.get('to_rgb', False)))
    return mean, std, rgb


def load_backbone_weights(backbone: torch.nn.Module, checkpoint: str, prefix: str) -> None:
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    state = {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}
    own = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + '.')}
    if not own:  # a backbone-only checkpoint
        own = state
    try:
        missing, unexpected = backbone.load_state_dict(own, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise SystemExit(f'{checkpoint}: the ClusTR weights do not match the config: {e}')
    if missing or unexpected:
        raise SystemExit(f'{checkpoint}: the ClusTR weights do not match the config (missing {len(missing)} keys, '
                         f'e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]})')


def load_image(path: str, size: Optional[int]) -> np.ndarray:
    import mmcv
    img = mmcv.imread(path, channel_order='rgb')
    if img is None:
        raise SystemExit(f'cannot read image {path}')
    if size:
        h, w = img.shape[:2]
        img = mmcv.imrescale(img, size / min(h, w), interpolation='bilinear')
    return np.ascontiguousarray(img)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    found = find_clustr(cfg.model)
    if found is None:
        raise SystemExit(f'{args.config}: no ClusTR module in the model config')
    path, backbone_cfg = found
    backbone_cfg = backbone_cfg.copy()
    no_ckpt = args.checkpoint.lower() == 'none'
    if no_ckpt or backbone_cfg.get('init_cfg', None):
        backbone_cfg['init_cfg'] = None  # the weights come from CHECKPOINT (or the random init), not init_cfg

    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', None) or 'mmcluster')
    torch.manual_seed(args.seed)
    backbone = MODELS.build(backbone_cfg)
    if no_ckpt:
        backbone.init_weights()
    else:
        load_backbone_weights(backbone, args.checkpoint, path)
    backbone.to(args.device).eval()

    image = load_image(args.image, args.size)
    mean, std, rgb = preprocess_settings(cfg)
    net_in = image if rgb else image[..., ::-1]
    x = (net_in.astype(np.float32) - mean) / std
    inputs = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(args.device)
    idx, centers, hw, ratio = collect_clusters(backbone, inputs, args.stage, args.layer, args.scale)
    num_clusters = int(centers.numel())
    draw_token_clusters(image, idx.cpu(), hw, None if args.no_centers else centers.cpu(), alpha=args.alpha,
                        out_file=args.out, seed=args.seed)
    summary = dict(out=args.out, image_hw=tuple(image.shape[:2]), stage=args.stage, layer=args.layer,
                   scale=args.scale, ratio=ratio, grid=tuple(hw), num_tokens=int(idx.numel()),
                   num_clusters=num_clusters, nonempty_clusters=int(torch.unique(idx).numel()),
                   idx_cluster=idx.cpu(), centers=centers.cpu())
    print(f'{args.out}: stage {args.stage} block {args.layer} ratio {ratio}: {hw[0]} x {hw[1]} tokens -> '
          f'{num_clusters} clusters (image {image.shape[1]} x {image.shape[0]})')
    return summary


if __name__ == '__main__':
    main()
