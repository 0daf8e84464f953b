"""Draw the clusters of one Context Clusters token mixer on an image (paper Fig. 4 style).

    python tools/visualization/cluster_map.py CONFIG CHECKPOINT IMAGE --stage S --block J --head E
        [--out out.png] [--shape H W] [--alpha 0.5] [--seed 0] [--cfg-options k=v ...]

CONFIG is any config whose ``model.backbone`` is a ``ContextCluster`` (mmpretrain, mmdet or mmseg).
CHECKPOINT is a checkpoint of that whole model (the ``backbone.*`` keys are used), a backbone checkpoint
written by ``tools/model_converters/coc2mmcluster.py``, or ``none`` for random weights (the modules' own
initialisation, seeded by ``--seed``). The image is read as the toolkits do (BGR), optionally resized to
``--shape``, converted to RGB if the config's data preprocessor says so (``bgr_to_rgb`` / ``to_rgb``) and
normalised with its ``mean`` / ``std``; the backbone accepts any size.

The token mixer of block J of stage S keeps its assignment (``ContextClusterLayer.keep_assign``): for
every point of the stage map and every head, the id of its centre (``region * M + m``). The map of head E
is upsampled to the image (map cell ``(r, c)`` of a stage with stride ``s = 4 * 2**S`` covers the pixels
``[r*s, (r+1)*s) x [c*s, (c+1)*s)``; the backbone pads the image at the bottom / right to a multiple of 4,
so the last cells may be cut), every cluster gets its own colour (all colours distinct), blended with
the image by ``--alpha``, and the cluster boundaries (pixels whose right or lower neighbour is in another
cluster) are drawn in white. The PNG shows the original image and the clusters side by side, separated
by a white gap of ``GAP`` pixels.
"""
import argparse
import os.path as osp
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mmcluster  # noqa: E402,F401  (compat fixes + registration)
from mmengine.config import Config, DictAction  # noqa: E402

GAP = 8
BOUNDARY = (255, 255, 255)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def build_backbone(cfg: Config) -> torch.nn.Module:
    from mmengine.registry import MODELS, init_default_scope
    backbone_cfg = cfg.model.get('backbone', None) if 'model' in cfg else None
    if backbone_cfg is None or not str(backbone_cfg.get('type', '')).endswith('ContextCluster'):
        raise ValueError(f'the config\'s model.backbone is not a ContextCluster '
                         f'(type {None if backbone_cfg is None else backbone_cfg.get("type")})')
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return MODELS.build(backbone_cfg)


def load_backbone_weights(backbone: torch.nn.Module, path: str) -> None:
    """Load ``backbone.*`` keys of a model checkpoint, or a raw / converted backbone state dict.

    Only the output norms (``norm0/2/4/6``, unused here) may be missing or unexpected; anything else raises.
    """
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    missing, unexpected = backbone.load_state_dict(state, strict=False)

    def bad(keys):
        return [k for k in keys if not k.split('.')[0] in ('norm0', 'norm2', 'norm4', 'norm6')]

    if bad(missing) or bad(unexpected):
        raise KeyError(f'{path} does not fit the backbone: missing {bad(missing)[:10]}, '
                       f'unexpected {bad(unexpected)[:10]}')


def normalisation(cfg: Config) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], bool]:
    """``(mean, std, to_rgb)`` of the config's data preprocessor (model's, else the top-level one)."""
    pre = cfg.model.get('data_preprocessor', None) or cfg.get('data_preprocessor', None) or {}
    if not pre:
        return np.array(IMAGENET_MEAN), np.array(IMAGENET_STD), True
    to_rgb = bool(pre.get('bgr_to_rgb', pre.get('to_rgb', False)))
    mean, std = pre.get('mean', None), pre.get('std', None)
    return (None if mean is None else np.asarray(mean, np.float64),
            None if std is None else np.asarray(std, np.float64), to_rgb)


def preprocess(image_bgr: np.ndarray, mean, std, to_rgb: bool) -> torch.Tensor:
    img = image_bgr[..., ::-1] if to_rgb else image_bgr
    img = img.astype(np.float64)
    if mean is not None:
        img = img - mean
    if std is not None:
        img = img / std
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None]


@torch.no_grad()
def assignment(backbone: torch.nn.Module, inputs: torch.Tensor, stage: int, block: int) -> torch.Tensor:
    """``[E, h, w]`` centre ids of every head of block ``block`` of stage ``stage`` (first image)."""
    if not 0 <= stage < 4:
        raise ValueError(f'stage must be in 0..3, got {stage}')
    blocks = backbone.network[2 * stage]
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f'stage {stage} has {len(blocks)} blocks, got block {block}')
    layer = blocks[block].token_mixer
    previous, was_training = layer.keep_assign, backbone.training
    layer.keep_assign = True
    backbone.eval()
    try:
        backbone(inputs)
        assign = layer.last_assign
    finally:
        layer.keep_assign = previous
        layer.last_assign = None
        backbone.train(was_training)
    return assign[0]


def upsample(labels: np.ndarray, stride: int, height: int, width: int) -> np.ndarray:
    """Map cell ``(r, c)`` -> pixels ``[r*stride, (r+1)*stride) x [c*stride, (c+1)*stride)``, cropped."""
    rows = np.minimum(np.arange(height) // stride, labels.shape[0] - 1)
    cols = np.minimum(np.arange(width) // stride, labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def distinct_colors(num: int, seed: int = 0) -> np.ndarray:
    """``[num, 3]`` uint8 colours, pairwise distinct and never the boundary colour."""
    from mmcluster.visualization import cluster_colors
    colors = cluster_colors(num, seed).astype(np.int64)
    seen = {BOUNDARY}
    for i in range(num):
        c = colors[i]
        while tuple(int(v) for v in c) in seen:  # nudge a clash (rare) to a free colour
            c = np.array([c[0], c[1], (c[2] + 1) % 256]) if c[2] < 255 else np.array([c[0], (c[1] + 1) % 256, 0])
        colors[i] = c
        seen.add(tuple(int(v) for v in c))
    return colors.astype(np.uint8)


def draw(image_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5, seed: int = 0) -> np.ndarray:
    """``[H, 2W + GAP, 3]``: the image | the clusters (distinct colours blended by ``alpha``, white boundaries)."""
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape)
    palette = distinct_colors(int(inverse.max()) + 1, seed).astype(np.float64)
    over = (1 - alpha) * image_rgb.astype(np.float64) + alpha * palette[inverse]
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    over[edge] = BOUNDARY
    over = np.clip(np.round(over), 0, 255).astype(np.uint8)
    H, W = labels.shape
    canvas = np.full((H, 2 * W + GAP, 3), 255, np.uint8)
    canvas[:, :W] = image_rgb
    canvas[:, W + GAP:] = over
    return canvas


def cluster_map(config, checkpoint: str, image, stage: int, block: int, head: int,
                out: Optional[str] = None, shape: Optional[Sequence[int]] = None, alpha: float = 0.5,
                seed: int = 0, cfg_options: Optional[dict] = None) -> Dict[str, Any]:
    """Run the backbone and draw; returns ``canvas``, ``labels`` (``[H, W]`` centre ids), ``num_clusters``."""
    import mmcv
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    torch.manual_seed(seed)
    backbone = build_backbone(cfg)
    if str(checkpoint).lower() != 'none':
        load_backbone_weights(backbone, str(checkpoint))
    img = mmcv.imread(str(image), channel_order='bgr')
    if img is None:
        raise FileNotFoundError(image)
    if shape:
        h, w = (shape[0], shape[0]) if len(shape) == 1 else shape[:2]
        img = mmcv.imresize(img, (int(w), int(h)))
    mean, std, to_rgb = normalisation(cfg)
    inputs = preprocess(img, mean, std, to_rgb)
    assign = assignment(backbone, inputs, stage, block)
    if not -assign.shape[0] <= head < assign.shape[0]:
        raise ValueError(f'the layer has {assign.shape[0]} heads, got head {head}')
    H, W = img.shape[:2]
    labels = upsample(assign[head].numpy(), 4 * 2**stage, H, W)
    canvas = draw(np.ascontiguousarray(img[..., ::-1]), labels, alpha, seed)
    if out is not None:
        from PIL import Image
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas).save(out, format='PNG')
    return dict(canvas=canvas, labels=labels, num_clusters=int(len(np.unique(labels))), out=out)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the clusters of a Context Clusters layer on an image')
    parser.add_argument('config', help='config with a ContextCluster backbone')
    parser.add_argument('checkpoint', help='model / converted backbone checkpoint, or "none" (random weights)')
    parser.add_argument('image', help='image file')
    parser.add_argument('--stage', type=int, default=0, help='stage 0..3')
    parser.add_argument('--block', type=int, default=0, help='block within the stage (negative from the end)')
    parser.add_argument('--head', type=int, default=0, help='head of the token mixer')
    parser.add_argument('--out', default=None, help='output PNG (default: <image>_S<s>_B<b>_H<h>.png)')
    parser.add_argument('--shape', type=int, nargs='+', default=None, help='resize the image to H W first')
    parser.add_argument('--alpha', type=float, default=0.5, help='weight of the cluster colours (1: colours only)')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights and of the palette')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    out = args.out or str(Path(args.image).with_suffix('')) + f'_S{args.stage}_B{args.block}_H{args.head}.png'
    result = cluster_map(args.config, args.checkpoint, args.image, args.stage, args.block, args.head, out,
                         args.shape, args.alpha, args.seed, args.cfg_options)
    H, W = result['labels'].shape
    print(f'{result["num_clusters"]} clusters in stage {args.stage} block {args.block} head {args.head} '
          f'on a {H}x{W} image -> {out}')
    return result


if __name__ == '__main__':
    main()
