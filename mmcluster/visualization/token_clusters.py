"""Draw the token clusters of a clustering layer on an image (paper Fig. A3 style).

:func:`collect_clusters` runs a :class:`~mmcluster.models.backbones.ClusTR` on one image and returns the
DPC-kNN assignment of a chosen stage / block / scale on that stage's token grid; :func:`draw_token_clusters`
paints every token with its cluster's colour (nearest-neighbour upsampled to the image), blends it with the
image and draws the cluster boundaries (pixels whose right or lower neighbour belongs to another cluster),
optionally marking the centre tokens, and writes a PNG.
"""
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

Color = Tuple[int, int, int]


def cluster_colors(num_clusters: int, seed: int = 0) -> np.ndarray:
    """``[M, 3]`` uint8 colours: evenly spread hues (golden-ratio steps), varied saturation / value."""
    rng = np.random.default_rng(seed)
    hues = (np.arange(num_clusters) * 0.618033988749895 + rng.random()) % 1.0
    sat = 0.55 + 0.45 * rng.random(num_clusters)
    val = 0.7 + 0.3 * rng.random(num_clusters)
    i = np.floor(hues * 6).astype(int) % 6
    f = hues * 6 - np.floor(hues * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)]
    rgb = np.stack([np.choose(i, [row[c] for row in table]) for c in range(3)], axis=1)
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def _labels_to_pixels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = labels.shape
    rows = np.minimum(np.arange(height) * h // height, h - 1)
    cols = np.minimum(np.arange(width) * w // width, w - 1)
    return labels[rows[:, None], cols[None, :]]


def draw_token_clusters(image: Union[np.ndarray, torch.Tensor],
                        idx_cluster: Union[np.ndarray, torch.Tensor],
                        hw_shape: Optional[Sequence[int]] = None,
                        centers: Optional[Union[np.ndarray, torch.Tensor]] = None,
                        alpha: float = 0.5,
                        boundary_color: Color = (255, 255, 255),
                        center_color: Color = (0, 0, 0),
                        out_file: Optional[Union[str, Path]] = None,
                        seed: int = 0) -> np.ndarray:
    """Overlay token clusters on an image.

    Args:
        image: ``[H, W, 3]`` uint8 RGB (or ``[H, W]`` grey).
        idx_cluster: cluster id per token, ``[N]`` / ``[1, N]`` (with ``hw_shape``) or ``[h, w]``.
        hw_shape: token grid ``(h, w)`` with ``h * w = N``; tokens are row-major.
        centers: optional centre token indices (``[M]``), marked with ``center_color``.
        alpha: weight of the cluster colours.
        boundary_color: colour of the cluster boundaries (None: no boundaries).
        center_color: colour of the centre marks.
        out_file: write the result as a PNG here (parent folders are created).
        seed: colour palette seed.

    Returns:
        ``[H, W, 3]`` uint8 RGB.
    """
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'image must be [H, W, 3] (or [H, W]), got {img.shape}')
    img = img.astype(np.float32)
    labels = idx_cluster.detach().cpu().numpy() if isinstance(idx_cluster, torch.Tensor) else np.asarray(idx_cluster)
    if labels.ndim == 2 and labels.shape[0] == 1 and hw_shape is not None:
        labels = labels[0]
    if labels.ndim == 1:
        if hw_shape is None or int(hw_shape[0]) * int(hw_shape[1]) != labels.size:
            raise ValueError(f'hw_shape {hw_shape} does not match {labels.size} tokens')
        labels = labels.reshape(int(hw_shape[0]), int(hw_shape[1]))
    if labels.ndim != 2:
        raise ValueError(f'idx_cluster must be [N], [1, N] or [h, w], got {labels.shape}')
    labels = labels.astype(np.int64)
    H, W = img.shape[:2]
    pix = _labels_to_pixels(labels, H, W)
    palette = cluster_colors(int(labels.max()) + 1, seed).astype(np.float32)
    out = (1 - alpha) * img + alpha * palette[pix]
    if boundary_color is not None:
        edge = np.zeros((H, W), dtype=bool)
        edge[:, :-1] |= pix[:, :-1] != pix[:, 1:]
        edge[:-1, :] |= pix[:-1, :] != pix[1:, :]
        out[edge] = boundary_color
    if centers is not None:
        cen = centers.detach().cpu().numpy() if isinstance(centers, torch.Tensor) else np.asarray(centers)
        h, w = labels.shape
        for t in cen.reshape(-1):
            r, c = divmod(int(t), w)
            y0, y1 = r * H // h, max(r * H // h + 1, (r + 1) * H // h)
            x0, x1 = c * W // w, max(c * W // w + 1, (c + 1) * W // w)
            yc, xc = (y0 + y1) // 2, (x0 + x1) // 2
            ry, rx = max(1, (y1 - y0) // 4), max(1, (x1 - x0) // 4)
            out[max(0, yc - ry):yc + ry, max(0, xc - rx):xc + rx] = center_color
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if out_file is not None:
        from PIL import Image
        path = Path(out_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(path, format='PNG')
    return out


@torch.no_grad()
def collect_clusters(model: torch.nn.Module,
                     inputs: torch.Tensor,
                     stage: int,
                     block: int = -1,
                     scale: int = 0) -> Tuple[torch.Tensor, torch.Tensor, Tuple[int, int], float]:
    """Run ``model`` (a ClusTR backbone) on ``inputs`` ``[1, C, H, W]`` and return one layer's clusters.

    Args:
        stage, block: which block's attention (``model.stages[stage][block]``).
        scale: index among that attention's **clustered** scales (ratio > 1 and fewer clusters than tokens).

    Returns:
        ``(idx_cluster [N], centers [M], (h, w), ratio)`` of the first image.
    """
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError(f'inputs must be one image [1, C, H, W], got {tuple(inputs.shape)}')
    attn = model.stages[stage][block].attn
    hw = {}

    def hook(module, args, output):  # returns None: the output is left unchanged
        hw['hw'] = output[1]

    handle = model.patch_embeds[stage].register_forward_hook(hook)
    previous = attn.record_clusters
    attn.record_clusters = True
    was_training = model.training
    model.eval()
    try:
        model(inputs)
    finally:
        handle.remove()
        attn.record_clusters = previous
        model.train(was_training)
    clusters = attn.last_clusters
    if not clusters:
        raise ValueError(f'stage {stage} block {block} has no clustered scale at this input size '
                         f'(ratios {attn.ratios})')
    if not -len(clusters) <= scale < len(clusters):
        raise ValueError(f'scale {scale} out of range: {len(clusters)} clustered scale(s)')
    ratio, idx, centers = clusters[scale]
    return idx[0], centers[0], tuple(hw['hw']), ratio
