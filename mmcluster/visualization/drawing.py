"""Painting cluster maps: token grids onto image pixels, colour overlays with boundaries, panels in a grid.

A token grid ``[h, w]`` covers the model's input tensor ``[H_in, W_in]`` (the image at the top-left, the
data preprocessor's padding at the bottom / right). With a stride ``s`` (given, or the power of two with
``ceil(H_in / s) = h`` and ``ceil(W_in / s) = w``), cell ``(r, c)`` covers the pixels
``[r s, (r + 1) s) x [c s, (c + 1) s)`` (a backbone that pads its input inside, like Context Clusters, has
cells that reach past the input); otherwise the grid is spread evenly over the input. The result is cropped
to the image.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .palette import BOUNDARY, CENTER, Color, distinct_colors

GAP = 8  # white pixels between panels
TITLE_HEIGHT = 14


def infer_stride(grid_hw: Sequence[int], input_hw: Sequence[int]) -> Optional[int]:
    """The power of two ``s`` with ``ceil(input / s) == grid`` on both axes, or None."""
    for k in range(8):
        s = 2**k
        if all(-(-int(n) // s) == int(g) for g, n in zip(grid_hw, input_hw)):
            return s
    return None


def grid_to_pixels(labels: np.ndarray, input_hw: Sequence[int], image_hw: Optional[Sequence[int]] = None,
                   stride: Optional[int] = None) -> np.ndarray:
    """Spread a ``[h, w]`` token grid over the input tensor (see the module docstring), cropped to ``image_hw``."""
    h, w = labels.shape
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    out_h, out_w = (in_h, in_w) if image_hw is None else (int(image_hw[0]), int(image_hw[1]))
    stride = stride or infer_stride((h, w), (in_h, in_w))
    ys, xs = np.arange(out_h), np.arange(out_w)
    if stride:
        rows, cols = ys // stride, xs // stride
    else:
        rows, cols = ys * h // in_h, xs * w // in_w
    return labels[np.minimum(rows, h - 1)[:, None], np.minimum(cols, w - 1)[None, :]]


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour is in another cluster."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay_clusters(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5, seed: int = 0,
                     boundary: Optional[Color] = BOUNDARY, centers: Optional[np.ndarray] = None,
                     center_color: Color = CENTER) -> np.ndarray:
    """The image with one distinct colour per cluster blended in by ``alpha`` and the boundaries drawn.

    Args:
        image: ``[H, W, 3]`` uint8 RGB (or ``[H, W]`` grey).
        labels: ``[H, W]`` cluster ids on the image's pixels (any integers).
        alpha: weight of the cluster colours (1: colours only).
        seed: palette seed.
        boundary: colour of the boundaries (None: none drawn).
        centers: ``[H, W]`` bool mask of centre marks, painted ``center_color``.

    Returns:
        ``[H, W, 3]`` uint8 RGB.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'image must be [H, W, 3] or [H, W], got {img.shape}')
    if labels.shape != img.shape[:2]:
        raise ValueError(f'labels {labels.shape} and image {img.shape[:2]} differ in size')
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape)
    palette = distinct_colors(int(inverse.max()) + 1, seed).astype(np.float64)
    out = (1 - alpha) * img.astype(np.float64) + alpha * palette[inverse]
    if boundary is not None:
        out[boundary_mask(labels)] = boundary
    if centers is not None:
        out[centers] = center_color
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def center_marks(centers: Sequence[int], grid_hw: Sequence[int], pixels_of_cell: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: a small square in the middle of every centre token's cell.

    ``pixels_of_cell`` is the ``[H, W]`` flat cell index of every pixel (:func:`grid_to_pixels` of
    ``arange(h * w)``).
    """
    mask = np.zeros(pixels_of_cell.shape, bool)
    for t in np.asarray(centers).reshape(-1):
        ys, xs = np.nonzero(pixels_of_cell == int(t))
        if len(ys) == 0:  # a cell of the padding, outside the image
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        yc, xc = (y0 + y1) // 2, (x0 + x1) // 2
        ry, rx = max(1, (y1 - y0) // 4), max(1, (x1 - x0) // 4)
        mask[max(y0, yc - ry):min(y1, yc + ry), max(x0, xc - rx):min(x1, xc + rx)] = True
    return mask


def draw_boundaries(image: np.ndarray, labels: np.ndarray, color: Color = BOUNDARY) -> np.ndarray:
    """``image`` with the boundaries of ``labels`` (same size) painted ``color``."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[boundary_mask(labels)] = color
    return out


def draw_mask(image: np.ndarray, mask: np.ndarray, color: Color = (255, 0, 0), alpha: float = 0.6) -> np.ndarray:
    """Blend ``color`` into the pixels of ``mask`` (e.g. the leakage of an undersegmentation score)."""
    out = np.array(image, dtype=np.float64, copy=True)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def with_title(panel: np.ndarray, title: str, height: int = TITLE_HEIGHT) -> np.ndarray:
    """The panel below a white strip with ``title`` in black (cut to the panel's width)."""
    import cv2
    strip = np.full((height, panel.shape[1], 3), 255, np.uint8)
    scale = 0.35
    width = cv2.getTextSize('M', cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    text = title[:max(1, panel.shape[1] // max(1, width))]
    cv2.putText(strip, text, (1, height - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def compose_grid(panels: List[np.ndarray], cols: Optional[int] = None, gap: int = GAP) -> Tuple[np.ndarray, int]:
    """Panels (same size) in rows of ``cols`` (default: about square) on white, ``gap`` pixels apart.

    Returns ``(canvas, cols)``; panel ``i`` sits at ``(i // cols, i % cols)``, its top-left corner at
    ``(row * (H + gap), col * (W + gap))``.
    """
    if not panels:
        raise ValueError('no panels to compose')
    h, w = panels[0].shape[:2]
    if any(p.shape[:2] != (h, w) for p in panels):
        raise ValueError(f'panels differ in size: {sorted({p.shape[:2] for p in panels})}')
    cols = cols or int(np.ceil(np.sqrt(len(panels))))
    rows = -(-len(panels) // cols)
    canvas = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
    for i, panel in enumerate(panels):
        r, c = divmod(i, cols)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = panel
    return canvas, cols
