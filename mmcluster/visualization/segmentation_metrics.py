"""How well a partition respects a ground-truth segmentation (superpixel metrics; HCFormer paper Fig. 4 / III).

* undersegmentation error of Neubert & Protzel (as in Stutz et al., "Superpixels: an evaluation of the
  state-of-the-art", cited by the HCFormer paper) ``UE = 1/N sum_S sum_{G: S∩G≠∅} min(|S∩G|, |S \\ G|)``;
* achievable segmentation accuracy ``ASA = 1/N sum_S max_G |S∩G|``;
* the per-pixel "leakage" map: pixels whose ground-truth label differs from the majority label of their
  cluster (``N (1 - ASA)`` pixels; drawn red like the paper's figures).

Ground-truth pixels equal to ``ignore_value`` count nowhere (neither in N nor in any cluster).
"""
from typing import Dict, Optional

import numpy as np

GT_FORMATS = ('label', 'coco-panoptic')


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


def read_gt(path: str, fmt: str = 'label') -> np.ndarray:
    """A ground-truth segmentation as ``[H, W]`` int64 segment ids.

    ``label``: a single-channel label PNG (e.g. ADE20K annotations, 0 = other / void); ``coco-panoptic``: a COCO
    panoptic PNG (id = R + 256 G + 256^2 B, 0 = void).
    """
    from PIL import Image
    if fmt not in GT_FORMATS:
        raise ValueError(f'unknown ground-truth format {fmt!r}; choose from {GT_FORMATS}')
    arr = np.asarray(Image.open(path))
    if fmt == 'coco-panoptic':
        if arr.ndim != 3:
            raise ValueError(f'{path}: a COCO panoptic PNG has 3 channels, got shape {arr.shape}')
        arr = arr[..., :3].astype(np.int64)
        return arr[..., 0] + 256 * arr[..., 1] + 256 * 256 * arr[..., 2]
    return (arr if arr.ndim == 2 else arr[..., 0]).astype(np.int64)
