"""Colours for cluster maps: one distinct colour per cluster, never the colour of boundaries or centre marks."""
from typing import Iterable, Tuple

import numpy as np

Color = Tuple[int, int, int]
BOUNDARY: Color = (255, 255, 255)
CENTER: Color = (0, 0, 0)


def cluster_colors(num_clusters: int, seed: int = 0) -> np.ndarray:
    """``[M, 3]`` uint8 colours: evenly spread hues (golden-ratio steps), saturation >= 0.55, value >= 0.7."""
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


def distinct_colors(num_clusters: int, seed: int = 0, avoid: Iterable[Color] = (BOUNDARY, CENTER)) -> np.ndarray:
    """:func:`cluster_colors` made pairwise distinct and different from ``avoid`` (a clash is nudged to a free
    colour; rare, but two of thousands of clusters may round to the same RGB)."""
    colors = cluster_colors(num_clusters, seed).astype(np.int64)
    seen = {tuple(int(v) for v in c) for c in avoid}
    for i in range(num_clusters):
        c = [int(v) for v in colors[i]]
        while tuple(c) in seen:
            c[2] += 1
            if c[2] > 255:
                c[2], c[1] = 0, (c[1] + 1) % 256
        colors[i] = c
        seen.add(tuple(c))
    return colors.astype(np.uint8)
