"""HCFormer's hierarchical clusters on an image: cluster boundaries per level and the undersegmentation-error
map against a ground-truth segmentation (paper Fig. 4, Fig. III).

* :func:`collect_hc_partitions` runs a detector / segmentor whose neck (or backbone) returns
  ``(feat, assigns, scales)`` on one image and returns the hard partitions of every level on the image grid
  (:func:`~mmcluster.models.layers.hc_decode.hc_partitions`, then nearest upsampling from stride 4);
* :func:`undersegmentation` scores a partition against ground truth: the undersegmentation error of Neubert &
  Protzel (as in Stutz et al., "Superpixels: an evaluation of the state-of-the-art", the paper's [48]),
  ``UE = 1/N sum_S sum_{G: S∩G≠∅} min(|S∩G|, |S \\ G|)``, the achievable segmentation accuracy
  ``ASA = 1/N sum_S max_G |S∩G|``, and a per-pixel "leakage" map: pixels whose ground-truth label differs
  from the majority label of their cluster (``N (1 - ASA)`` pixels; drawn red like the paper's figures);
* :func:`draw_boundaries` / :func:`draw_leakage` paint them on the image.

Ground-truth pixels equal to ``ignore_value`` count nowhere (neither in N nor in any cluster).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from mmcluster.models.layers.hc_decode import hc_partitions

Color = Tuple[int, int, int]


def _upsample_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = labels.shape
    rows = np.minimum(np.arange(height) * h // height, h - 1)
    cols = np.minimum(np.arange(width) * w // width, w - 1)
    return labels[rows[:, None], cols[None, :]]


@torch.no_grad()
def collect_hc_partitions(model, image_bgr: np.ndarray, mean: Sequence[float], std: Sequence[float],
                          bgr_to_rgb: bool = True, size_divisor: int = 32) -> List[np.ndarray]:
    """Hard partitions of every clustering level of ``model`` on ``image_bgr`` (``[H, W, 3]`` uint8).

    ``model.extract_feat`` must return ``(feat, assigns[, scales])`` (an HCFormer model). Returns a list,
    coarse-to-fine like the assignments (entry 0 = clusters of the top map, e.g. stride-32 cells), of
    ``[H, W]`` int64 label maps on the image grid.
    """
    img = torch.from_numpy(np.ascontiguousarray(image_bgr)).permute(2, 0, 1).float()
    if bgr_to_rgb:
        img = img[[2, 1, 0]]
    img = (img - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    height, width = img.shape[-2:]
    pad_h = -height % size_divisor
    pad_w = -width % size_divisor
    img = F.pad(img, (0, pad_w, 0, pad_h))[None]
    model.eval()
    feats = model.extract_feat(img)
    assigns = list(feats[1])
    if not assigns:
        return []
    parts = hc_partitions(assigns)
    ph, pw = img.shape[-2:]
    out = []
    for labels in parts:
        grid = labels[0].cpu().numpy()
        out.append(_upsample_labels(grid, ph, pw)[:height, :width])  # the finest grid covers the padded input
    return out


def undersegmentation(labels: np.ndarray, gt: np.ndarray, ignore_value: Optional[int] = None) -> Dict:
    """Undersegmentation error, achievable segmentation accuracy and the leakage map of a partition.

    Args:
        labels: ``[H, W]`` cluster ids.
        gt: ``[H, W]`` ground-truth segment ids (any integers).
        ignore_value: ground-truth value excluded from everything.

    Returns:
        dict with ``ue``, ``asa`` (floats; 0 / 1 when no pixel is valid) and ``leakage`` (``[H, W]`` bool).
    """
    if labels.shape != gt.shape:
        raise ValueError(f'labels {labels.shape} and gt {gt.shape} differ in shape')
    valid = np.ones(gt.shape, bool) if ignore_value is None else gt != ignore_value
    leakage = np.zeros(gt.shape, bool)
    n = int(valid.sum())
    if n == 0:
        return dict(ue=0.0, asa=1.0, leakage=leakage)
    _, s = np.unique(labels[valid], return_inverse=True)
    _, g = np.unique(gt[valid], return_inverse=True)
    num_g = int(g.max()) + 1
    inter = np.bincount(s * num_g + g, minlength=(int(s.max()) + 1) * num_g).reshape(-1, num_g)  # |S ∩ G|
    size = inter.sum(1, keepdims=True)  # |S|
    ue = float(np.minimum(inter, size - inter)[inter > 0].sum()) / n
    asa = float(inter.max(1).sum()) / n
    majority = inter.argmax(1)
    leakage[valid] = g != majority[s]
    return dict(ue=ue, asa=asa, leakage=leakage)


def draw_boundaries(image: np.ndarray, labels: np.ndarray, color: Color = (255, 255, 255)) -> np.ndarray:
    """``image`` (``[H, W, 3]`` uint8) with the pixels whose right or lower neighbour is in another cluster
    painted ``color``; ``labels`` is upsampled (nearest) to the image if smaller."""
    out = np.array(image, dtype=np.uint8, copy=True)
    if labels.shape != out.shape[:2]:
        labels = _upsample_labels(labels, *out.shape[:2])
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    out[edge] = color
    return out


def draw_leakage(image: np.ndarray, leakage: np.ndarray, color: Color = (255, 0, 0),
                 alpha: float = 0.6) -> np.ndarray:
    """Blend ``color`` into the leakage pixels of ``image``."""
    out = np.array(image, dtype=np.float32, copy=True)
    out[leakage] = (1 - alpha) * out[leakage] + alpha * np.asarray(color, np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
