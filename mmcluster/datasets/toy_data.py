"""Generate small, deterministic synthetic datasets in real COCO / ADE20K / ImageNet formats.

Every image is a synthetic scene: textured STUFF regions with irregular boundaries (sky, grass,
water, wall; each class has its own hue range and texture so it is learnable) under partially
occluding THING shapes (circle, ellipse, square, star, triangle) of random size, colour and
rotation, including a few tiny ones. Image sides are random in [128, 320] px and never a multiple
of 32, so padding / size-divisor code paths are exercised. The same seed always gives
byte-identical files.

Usage (``tools/make_toy_data.py`` is the command; :func:`mmcluster.utils.toy_run.ensure_toy_data`
generates the data when a run needs it)::

    python tools/make_toy_data.py OUT [--seed 0] [--num-train 240] [--num-val 60]
        [--num-cls-per-class 60] [--num-cls-val-per-class 15] [--tasks coco ade imagenet]
        [--preset default|mini]

Output layout under ``OUT``::

    coco/
      train2017/000000000001.jpg ...          # image ids 1..N
      val2017/000001000001.jpg ...            # image ids 1000001..; the first val image has
                                              # no things (empty-gt robustness)
      annotations/
        instances_{train,val}2017.json        # COCO instances: polygons of the visible mask,
                                              # area / bbox of the visible mask, thing classes
        panoptic_{train,val}2017.json         # COCO panoptic: things + one segment per stuff
        panoptic_{train,val}2017/*.png        # RGB-encoded segment ids (id = R + 256 G + 256^2 B),
                                              # 0 = void (a thin band on stuff/stuff borders)
    ade/                                      # ADEChallengeData2016 layout, same scenes as coco
      images/{training,validation}/ADE_{train,val}_00000001.jpg ...
      annotations/{training,validation}/ADE_{train,val}_00000001.png ...
                                              # mode 'L', REAL ADE20K ids (see ADE_CLASS_IDS),
                                              # 0 = other / void
    toy_data.json                             # what was generated (seed, sizes, tasks), written
                                              # last: its presence means the data is complete
    imagenet/
      train/<class>/<class>_train_00000.jpg   # one dominant thing per image (+ small distractors)
      val/<class>/<class>_val_00000.jpg
      meta/{train,val}.txt                    # "<class>/<file>.jpg <label>", label indexes
                                              # THING_CLASSES (which is sorted, so it equals the
                                              # folder order mmpretrain's CustomDataset infers)

Stale files from an earlier, larger run are removed from the folders written here (only files
whose names follow the patterns above), so a folder scan sees exactly the current set.
"""
import argparse
import colorsys
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image

# Sorted on purpose: mmpretrain's CustomDataset numbers folder classes alphabetically, so the
# labels written to imagenet/meta/*.txt agree with a plain folder scan.
THING_CLASSES: Tuple[str, ...] = ('circle', 'ellipse', 'square', 'star', 'triangle')
STUFF_CLASSES: Tuple[str, ...] = ('sky', 'grass', 'water', 'wall')

# COCO category ids. Thing ids have gaps like real COCO, so code that confuses category ids with
# contiguous labels fails here too; stuff ids follow the things.
THING_CATEGORY_IDS: Dict[str, int] = {
    'circle': 1, 'ellipse': 2, 'square': 3, 'star': 5, 'triangle': 7}
STUFF_CATEGORY_IDS: Dict[str, int] = {'sky': 8, 'grass': 9, 'water': 10, 'wall': 11}
CATEGORY_IDS: Dict[str, int] = {**THING_CATEGORY_IDS, **STUFF_CATEGORY_IDS}

# Our classes as ADE20K (SceneParsing-150) class names, and the value written to the ADE label
# PNGs: the 1-based ADE20K index, i.e. mmseg ADE20KDataset.METAINFO['classes'].index(name) + 1.
ADE_CLASS_NAMES: Dict[str, str] = {
    'sky': 'sky', 'grass': 'grass', 'water': 'water', 'wall': 'wall',
    'circle': 'ball', 'ellipse': 'plate', 'square': 'box', 'star': 'flower', 'triangle': 'tent'}
ADE_CLASS_IDS: Dict[str, int] = {
    'sky': 3, 'grass': 10, 'water': 22, 'wall': 1,
    'circle': 120, 'ellipse': 143, 'square': 42, 'star': 67, 'triangle': 115}

TASKS: Tuple[str, ...] = ('coco', 'ade', 'imagenet')
STAMP = 'toy_data.json'  # written last; lists the parameters of the run that completed

MIN_SIDE, MAX_SIDE = 128, 320
MAX_THINGS = 6
TINY_PROB = 0.08  # chance that a thing is tiny (a few px across)
MIN_VISIBLE_PX = 4  # smaller visible remnants are rejected at placement time
MIN_VISIBLE_FRAC = 0.3  # "partial" occlusion: at least this much of a thing stays visible
VAL_ID_OFFSET = 1_000_000  # COCO image ids of val images, distinct from train ids
JPEG_QUALITY = 95

# Keys mixed into the per-image seed so every image is independent of the split sizes.
_SCENE_KEY, _CLS_KEY = 0, 1
_SPLIT_KEY = {'train': 0, 'val': 1}


@dataclass(frozen=True)
class SceneStyle:
    """The knobs of the scene generator; the defaults are the module constants (the default toy data).

    Attributes:
        min_side: smallest image side (px).
        max_side: largest image side (px); sides are never a multiple of 32.
        max_things: most things per detection / segmentation scene.
        tiny_prob: chance that a thing is tiny (radius 1.5-3.5 px).
        radius: (low, high) radius of a normal thing as a fraction of the image's short side.
    """

    min_side: int = MIN_SIDE
    max_side: int = MAX_SIDE
    max_things: int = MAX_THINGS
    tiny_prob: float = TINY_PROB
    radius: Tuple[float, float] = (0.07, 0.3)


#: Named styles (``make_toy_data(preset=...)``, ``--preset``). ``default`` is the toy data every test and
#: config uses; ``mini`` is the benchmark protocol's data (docs/benchmark_protocol.md): smaller images, at most
#: three larger things and no tiny ones, so that a model learns boxes, masks and panoptic segments within minutes
#: of CPU training. The same random draws are made in the same order for every style, only their ranges differ.
PRESETS: Dict[str, SceneStyle] = {
    'default': SceneStyle(),
    'mini': SceneStyle(min_side=112, max_side=176, max_things=3, tiny_prob=0.0, radius=(0.15, 0.35)),
}


# Plain (non-string) annotations: dataclasses then need no sys.modules entry, so the file can be
# loaded with importlib.util.spec_from_file_location as tests and configs do.
@dataclass
class Scene:
    """One rendered synthetic scene.

    Attributes:
        image: (H, W, 3) uint8 RGB image.
        stuff_map: (H, W) int8 index into STUFF_CLASSES, -1 where void (stuff/stuff border).
            Pixels covered by things keep their stuff index underneath.
        instance_map: (H, W) int16, 0 = no thing, k = things[k - 1] is the visible thing.
        things: Class name of each thing instance, in drawing order (later ones on top).
    """

    image: np.ndarray
    stuff_map: np.ndarray
    instance_map: np.ndarray
    things: List[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Scene generation
# ----------------------------------------------------------------------------------------------


def _sample_side(rng: np.random.Generator, style: SceneStyle = PRESETS['default']) -> int:
    """Samples an image side in [style.min_side, style.max_side] that is not a multiple of 32."""
    while True:
        side = int(rng.integers(style.min_side, style.max_side + 1))
        if side % 32:
            return side


def _sample_size(rng: np.random.Generator, style: SceneStyle = PRESETS['default']) -> Tuple[int, int]:
    """Samples (H, W); independent sides give portrait, landscape and square-ish images."""
    return _sample_side(rng, style), _sample_side(rng, style)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Returns smooth noise in about [0, 1]: a coarse random grid upsampled bicubically.

    Args:
        rng: Random generator.
        h: Output height.
        w: Output width.
        cells: Approximate number of grid cells along the longer side (feature size).
    """
    scale = max(h, w) / cells
    gh, gw = max(2, int(round(h / scale)) + 1), max(2, int(round(w / scale)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _hsv_rgb(hue_deg: float, sat: float, val: float) -> np.ndarray:
    """Converts one HSV colour (hue in degrees) to an RGB float32 vector in [0, 1]."""
    return np.asarray(colorsys.hsv_to_rgb((hue_deg % 360) / 360, sat, val), np.float32)


def _texture_sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blue gradient, brighter towards the bottom, with soft white clouds."""
    base = _hsv_rgb(rng.uniform(200, 230), rng.uniform(0.35, 0.7), rng.uniform(0.7, 0.95))
    grad = np.linspace(-0.08, 0.12, h, dtype=np.float32)[:, None, None]
    img = base[None, None] + grad
    clouds = np.clip((_smooth_noise(rng, h, w, rng.uniform(3, 7)) - 0.55) * 2.5, 0, 1)
    clouds = (clouds * rng.uniform(0.3, 0.8))[..., None]
    return img * (1 - clouds) + clouds


def _texture_grass(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Green with vertical blade-like streaks (noise stretched along y)."""
    base = _hsv_rgb(rng.uniform(85, 135), rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.7))
    blades = rng.standard_normal((max(2, h // 8), w)).astype(np.float32)
    blades = cv2.resize(blades, (w, h), interpolation=cv2.INTER_LINEAR)
    return base[None, None] * (1 + 0.22 * blades[..., None])


def _texture_water(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Dark teal with horizontal ripples whose phase wobbles smoothly."""
    base = _hsv_rgb(rng.uniform(170, 195), rng.uniform(0.6, 0.95), rng.uniform(0.3, 0.6))
    ys = np.arange(h, dtype=np.float32)[:, None]
    wobble = _smooth_noise(rng, h, w, rng.uniform(2, 5)) * rng.uniform(4, 10)
    ripples = np.sin(2 * np.pi * ys / rng.uniform(4, 9) + wobble)
    return base[None, None] * (1 + 0.18 * ripples[..., None])


def _texture_wall(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Brick pattern: staggered bricks with per-brick shade and light mortar lines."""
    base = _hsv_rgb(rng.uniform(5, 30), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.75))
    brick_h = int(rng.integers(6, 15))
    brick_w = int(brick_h * rng.uniform(2.0, 3.0))
    ys, xs = np.mgrid[0:h, 0:w]
    row = ys // brick_h
    shifted = xs + (row % 2) * (brick_w // 2)
    col = shifted // brick_w
    shades = rng.uniform(0.85, 1.15, (row.max() + 1, col.max() + 1)).astype(np.float32)
    img = base[None, None] * shades[row, col][..., None]
    mortar = ((ys % brick_h) == 0) | ((shifted % brick_w) == 0)
    img[mortar] = rng.uniform(0.7, 0.85)
    return img


_STUFF_TEXTURES = {
    'sky': _texture_sky, 'grass': _texture_grass, 'water': _texture_water, 'wall': _texture_wall}
# Layout prior along y (top = -1 .. bottom = +1): sky tends to the top, ground to the bottom.
_STUFF_Y_PRIOR = {'sky': -1.0, 'grass': 0.7, 'water': 1.0, 'wall': 0.0}


def _stuff_layout(rng: np.random.Generator, h: int, w: int,
                  names: Sequence[str]) -> np.ndarray:
    """Splits the image into irregular regions, one per stuff class in ``names``.

    Each class gets a smooth random field plus a finer one (for ragged borders) and a vertical
    prior; every pixel takes the arg-max class.

    Returns:
        (H, W) int8 map of indices into STUFF_CLASSES.
    """
    if len(names) == 1:
        return np.full((h, w), STUFF_CLASSES.index(names[0]), np.int8)
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    fields = []
    for name in names:
        f = _smooth_noise(rng, h, w, rng.uniform(2, 5))
        f += 0.25 * _smooth_noise(rng, h, w, rng.uniform(10, 16))
        f += _STUFF_Y_PRIOR[name] * rng.uniform(0.3, 0.9) * y
        fields.append(f)
    winner = np.argmax(np.stack(fields), axis=0)
    lut = np.asarray([STUFF_CLASSES.index(n) for n in names], np.int8)
    return lut[winner]


def _void_band(stuff_map: np.ndarray) -> np.ndarray:
    """Marks a 1-px band where the stuff class changes to the right or below (like COCO's
    unlabeled borders)."""
    band = np.zeros(stuff_map.shape, bool)
    band[:, :-1] |= stuff_map[:, :-1] != stuff_map[:, 1:]
    band[:-1, :] |= stuff_map[:-1, :] != stuff_map[1:, :]
    return band


def _regular_polygon(n: int, radius_ratio: float = 1.0) -> np.ndarray:
    """Unit polygon with ``n`` vertices; odd vertices scaled by ``radius_ratio`` (for stars)."""
    angles = np.arange(n) * 2 * np.pi / n - np.pi / 2
    radii = np.where(np.arange(n) % 2 == 1, radius_ratio, 1.0)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)


_UNIT_SHAPES = {
    'circle': _regular_polygon(64),
    'square': _regular_polygon(4),
    'triangle': _regular_polygon(3),
    'star': _regular_polygon(10, 0.45),
}


def _shape_polygon(rng: np.random.Generator, name: str, cx: float, cy: float,
                   radius: float) -> np.ndarray:
    """Returns the (N, 2) float polygon of a randomly rotated shape centred at (cx, cy)."""
    if name == 'ellipse':
        # Clearly flatter than a circle so the two classes stay separable.
        unit = _UNIT_SHAPES['circle'] * np.asarray([1.0, rng.uniform(0.4, 0.65)])
    else:
        unit = _UNIT_SHAPES[name]
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.asarray([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return unit @ rot.T * radius + np.asarray([cx, cy])


def _fill_polygon(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    """Rasterises a float polygon to a (H, W) bool mask with sub-pixel vertex precision."""
    shift = 4  # cv2 fixed-point: coordinates in 1/16 px
    mask = np.zeros((h, w), np.uint8)
    pts = np.round(poly * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def _thing_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random colour (any hue: colour must not give the class away) with a linear shading."""
    base = _hsv_rgb(rng.uniform(0, 360), rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(theta) * xs + np.sin(theta) * ys) / max(h, w)
    return base[None, None] * (0.85 + 0.3 * ramp[..., None])


def _has_holes(mask: np.ndarray) -> bool:
    """True if the mask encloses background (COCO polygons cannot express holes)."""
    _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                    cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _place_things(rng: np.random.Generator, h: int, w: int, num: int,
                  style: SceneStyle = PRESETS['default']) -> Tuple[np.ndarray, List[str], List[np.ndarray]]:
    """Places up to ``num`` things one on top of the other with only partial occlusion.

    A candidate is rejected (and re-drawn) when it would hide too much of an earlier thing or
    punch a hole into it, which keeps every visible mask expressible as COCO polygons.

    Returns:
        instance_map: (H, W) int16, 0 = background, k = k-th placed thing.
        names: Class of each placed thing.
        masks: Full (unoccluded, image-clipped) mask of each placed thing.
    """
    inst = np.zeros((h, w), np.int16)
    names: List[str] = []
    masks: List[np.ndarray] = []
    short = min(h, w)
    for _ in range(num):
        for _attempt in range(12):
            name = THING_CLASSES[int(rng.integers(len(THING_CLASSES)))]
            if rng.random() < style.tiny_prob:
                radius = rng.uniform(1.5, 3.5)
            else:
                radius = short * rng.uniform(*style.radius)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            full = _fill_polygon(_shape_polygon(rng, name, cx, cy, radius), h, w)
            if full.sum() < MIN_VISIBLE_PX:
                continue
            k = len(names) + 1
            candidate = np.where(full, np.int16(k), inst)
            if all(_visible_ok(candidate == j, masks[j - 1])
                   for j in np.unique(inst[full]) if j > 0):
                inst = candidate
                names.append(name)
                masks.append(full)
                break
    return inst, names, masks


def _visible_ok(visible: np.ndarray, full: np.ndarray) -> bool:
    """Whether an occluded thing is still a valid, partially visible annotation."""
    area = int(visible.sum())
    return (area >= MIN_VISIBLE_PX and area >= MIN_VISIBLE_FRAC * int(full.sum())
            and not _has_holes(visible))


def _sample_stuff(rng: np.random.Generator, max_num: int = 4) -> List[str]:
    """Picks 1..max_num distinct stuff classes (mostly 2-3)."""
    probs = np.asarray([0.1, 0.4, 0.35, 0.15][:max_num])
    num = int(rng.choice(np.arange(1, max_num + 1), p=probs / probs.sum()))
    order = rng.permutation(len(STUFF_CLASSES))[:num]
    return [STUFF_CLASSES[i] for i in sorted(order)]


def _render(rng: np.random.Generator, stuff_map: np.ndarray, instance_map: np.ndarray,
            num_things: int) -> np.ndarray:
    """Paints stuff textures, then the visible part of every thing, plus sensor noise."""
    h, w = stuff_map.shape
    img = np.zeros((h, w, 3), np.float32)
    for idx in np.unique(stuff_map):
        texture = _STUFF_TEXTURES[STUFF_CLASSES[idx]](rng, h, w)
        np.copyto(img, texture, where=(stuff_map == idx)[..., None])
    for k in range(1, num_things + 1):
        region = instance_map == k
        ys, xs = np.nonzero(region)
        if ys.size == 0:
            continue  # a distractor hidden by the main object
        # Only the bounding box is textured: most things are small.
        box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        crop = img[box]
        texture = _thing_texture(rng, crop.shape[0], crop.shape[1])
        np.copyto(crop, texture, where=region[box][..., None])
    img += rng.standard_normal(img.shape, dtype=np.float32) * 0.015
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_scene(rng: np.random.Generator, min_things: int = 1, style: SceneStyle = PRESETS['default']) -> Scene:
    """Generates one detection / segmentation scene with ``min_things``..``style.max_things`` things.

    Args:
        rng: Random generator (the scene is a pure function of its state).
        min_things: 1 for a normal scene (1..max_things things; placing the first thing never
            fails), 0 for a scene without any thing.
        style: sizes and numbers of the scene (:data:`PRESETS`).
    """
    h, w = _sample_size(rng, style)
    stuff_map = _stuff_layout(rng, h, w, _sample_stuff(rng))
    num = int(rng.integers(min_things, style.max_things + 1)) if min_things > 0 else 0
    instance_map, names, _ = _place_things(rng, h, w, num, style)
    image = _render(rng, stuff_map, instance_map, len(names))
    stuff_map = np.where(_void_band(stuff_map), np.int8(-1), stuff_map)
    return Scene(image, stuff_map, instance_map, names)


def make_cls_scene(rng: np.random.Generator, label: int, style: SceneStyle = PRESETS['default']) -> Scene:
    """Generates a classification image: one large, fully drawn thing of class ``label`` over
    1-2 stuff classes, with 0-2 small distractor things of other classes underneath (``style``: the
    image sides)."""
    h, w = _sample_size(rng, style)
    stuff_map = _stuff_layout(rng, h, w, _sample_stuff(rng, max_num=2))
    short = min(h, w)
    instance_map = np.zeros((h, w), np.int16)
    names = []
    others = [c for i, c in enumerate(THING_CLASSES) if i != label]
    for _ in range(int(rng.integers(0, 3))):
        name = others[int(rng.integers(len(others)))]
        poly = _shape_polygon(rng, name, rng.uniform(0, w), rng.uniform(0, h),
                              short * rng.uniform(0.05, 0.12))
        names.append(name)
        instance_map[_fill_polygon(poly, h, w)] = len(names)
    name = THING_CLASSES[label]
    cx = w * (0.5 + rng.uniform(-0.15, 0.15))
    cy = h * (0.5 + rng.uniform(-0.15, 0.15))
    poly = _shape_polygon(rng, name, cx, cy, short * rng.uniform(0.25, 0.42))
    names.append(name)
    instance_map[_fill_polygon(poly, h, w)] = len(names)
    image = _render(rng, stuff_map, instance_map, len(names))
    return Scene(image, stuff_map, instance_map, names)


# ----------------------------------------------------------------------------------------------
# Annotation helpers
# ----------------------------------------------------------------------------------------------


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """Traces the exact pixel outline of a hole-free mask as COCO polygons.

    Vertices lie on pixel corners (pixel (x, y) spans [x, x+1) x [y, y+1)), which is the
    convention pycocotools rasterises back to exactly the same pixels. Unlike tracing pixel
    centres (cv2.findContours), this loses no boundary pixels and gives every component, even a
    single pixel, a valid polygon. One polygon per 8-connected piece; pieces touching only at a
    corner become separate polygons.

    Args:
        mask: (H, W) bool mask without holes.

    Returns:
        List of flat [x0, y0, x1, y1, ...] polygons.

    Raises:
        ValueError: If the mask has a hole (it would be traced as a counter-clockwise loop).
    """
    padded = np.pad(mask.astype(bool), 1)
    h, w = mask.shape
    inner = padded[1:-1, 1:-1]
    # Directed boundary edges with the mask on their right-hand side (image coords, y down):
    # (empty neighbour, start corner offset, end corner offset).
    sides = (
        (padded[:-2, 1:-1], (0, 0), (1, 0)),  # top edge, going +x
        (padded[1:-1, 2:], (1, 0), (1, 1)),  # right edge, going +y
        (padded[2:, 1:-1], (1, 1), (0, 1)),  # bottom edge, going -x
        (padded[1:-1, :-2], (0, 1), (0, 0)),  # left edge, going -y
    )
    parts: List[Tuple[np.ndarray, ...]] = []
    for neighbour, (ax, ay), (bx, by) in sides:
        ys, xs = np.nonzero(inner & ~neighbour)
        parts.append((xs + ax, ys + ay, xs + bx, ys + by))
    sx, sy, ex, ey = (np.concatenate(p) for p in zip(*parts))
    if sx.size == 0:
        return []
    stride = w + 1
    start, end = sy * stride + sx, ey * stride + ex
    order = np.argsort(start, kind='stable')
    first = np.searchsorted(start[order], end, side='left')
    count = np.searchsorted(start[order], end, side='right') - first
    succ = order[first]
    # A corner shared by two diagonal pixels has two outgoing edges: turning right keeps
    # following the same pixel, which splits corner-touching pieces into simple loops.
    for i in np.flatnonzero(count == 2):
        right_turn = (-(ey[i] - sy[i]), ex[i] - sx[i])
        for j in order[first[i]:first[i] + 2]:
            if (ex[j] - sx[j], ey[j] - sy[j]) == right_turn:
                succ[i] = j
    succ_list = succ.tolist()
    seen = np.zeros(sx.size, bool)
    polygons = []
    for s in range(sx.size):
        if seen[s]:
            continue
        loop = []
        i = s
        while not seen[i]:
            seen[i] = True
            loop.append(i)
            i = succ_list[i]
        idx = np.asarray(loop)
        dx, dy = ex[idx] - sx[idx], ey[idx] - sy[idx]
        corner = (dx != np.roll(dx, 1)) | (dy != np.roll(dy, 1))
        px, py = sx[idx][corner], sy[idx][corner]
        # Shoelace in y-down coords: outer loops (mask on the right) have positive area.
        if np.dot(px, np.roll(py, -1)) - np.dot(py, np.roll(px, -1)) <= 0:
            raise ValueError('mask has a hole; COCO polygons cannot represent it')
        polygons.append(np.stack([px, py], 1).astype(float).ravel().tolist())
    return polygons


def mask_bbox(mask: np.ndarray) -> List[int]:
    """Returns the COCO [x, y, w, h] box of a non-empty mask (w = x_max - x_min + 1)."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Encodes panoptic segment ids as RGB: id = R + 256 * G + 256**2 * B."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)


def _encode_jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='JPEG', quality=JPEG_QUALITY)
    return buf.getvalue()


def _save_png(array: np.ndarray, path: Path) -> None:
    # Fixed compression settings (and no metadata) keep the bytes reproducible.
    Image.fromarray(array).save(path, format='PNG', compress_level=6)


def _write_json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f)


def _prune(folder: Path, keep: Iterable[str], pattern: str) -> None:
    """Deletes files left by an earlier run: only names matching ``pattern`` not in ``keep``."""
    keep = set(keep)
    regex = re.compile(pattern)
    for path in folder.iterdir():
        if path.is_file() and regex.fullmatch(path.name) and path.name not in keep:
            path.unlink()


def _instance_categories() -> List[dict]:
    return [dict(id=THING_CATEGORY_IDS[n], name=n, supercategory='shape') for n in THING_CLASSES]


def _panoptic_categories() -> List[dict]:
    # Colours are only used by visualisers; fixed per class.
    palette = np.random.default_rng(12345).integers(0, 256, (len(CATEGORY_IDS), 3))
    cats = []
    for i, name in enumerate(THING_CLASSES + STUFF_CLASSES):
        is_thing = name in THING_CATEGORY_IDS
        cats.append(dict(id=CATEGORY_IDS[name], name=name,
                         supercategory='shape' if is_thing else 'background',
                         isthing=int(is_thing), color=[int(c) for c in palette[i]]))
    return cats


def _scene_annotations(scene: Scene, rng: np.random.Generator, image_id: int,
                       first_ann_id: int) -> Tuple[List[dict], np.ndarray, List[dict], np.ndarray]:
    """Builds instance annotations, the panoptic id map + segments_info and the ADE label map.

    Returns:
        instances: COCO instance annotations (one per visible thing).
        pan_ids: (H, W) int64 panoptic segment ids (0 = void).
        segments: COCO panoptic segments_info.
        ade: (H, W) uint8 ADE20K label map (0 = other / void).
    """
    h, w = scene.instance_map.shape
    pan_ids = np.zeros((h, w), np.int64)
    ade = np.zeros((h, w), np.uint8)
    stuff_present = [i for i in np.unique(scene.stuff_map) if i >= 0]
    n_seg = len(scene.things) + len(stuff_present)
    # Random distinct segment ids spread over all three RGB channels, like real COCO ids.
    seg_ids = rng.choice(256 ** 3 - 1, size=n_seg, replace=False) + 1
    instances, segments = [], []
    for k, name in enumerate(scene.things, start=1):
        mask = scene.instance_map == k
        bbox = mask_bbox(mask)
        area = int(mask.sum())
        instances.append(dict(
            id=first_ann_id + len(instances), image_id=image_id,
            category_id=THING_CATEGORY_IDS[name], segmentation=mask_to_polygons(mask),
            area=float(area), bbox=[float(v) for v in bbox], iscrowd=0))
        seg_id = int(seg_ids[k - 1])
        pan_ids[mask] = seg_id
        ade[mask] = ADE_CLASS_IDS[name]
        segments.append(dict(id=seg_id, category_id=THING_CATEGORY_IDS[name], iscrowd=0,
                             bbox=bbox, area=area))
    for j, idx in enumerate(stuff_present):
        name = STUFF_CLASSES[idx]
        mask = (scene.stuff_map == idx) & (scene.instance_map == 0)
        if not mask.any():
            continue  # fully covered by things
        seg_id = int(seg_ids[len(scene.things) + j])
        pan_ids[mask] = seg_id
        ade[mask] = ADE_CLASS_IDS[name]
        segments.append(dict(id=seg_id, category_id=STUFF_CATEGORY_IDS[name], iscrowd=0,
                             bbox=mask_bbox(mask), area=int(mask.sum())))
    return instances, pan_ids, segments, ade


# ----------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------


def _image_rng(seed: int, task_key: int, split: str, *index: int) -> np.random.Generator:
    """Independent generator per image: adding images never changes existing ones."""
    return np.random.default_rng([seed, task_key, _SPLIT_KEY[split], *index])


def _write_scene_split(out: Path, split: str, num: int, seed: int, tasks: Sequence[str],
                       stats: dict, style: SceneStyle = PRESETS['default']) -> None:
    """Generates ``num`` scenes of one split and writes the COCO and / or ADE files."""
    coco_dir, ade_dir = out / 'coco', out / 'ade'
    img_dir = coco_dir / f'{split}2017'
    pan_dir = coco_dir / 'annotations' / f'panoptic_{split}2017'
    ade_split = 'training' if split == 'train' else 'validation'
    ade_img_dir = ade_dir / 'images' / ade_split
    ade_ann_dir = ade_dir / 'annotations' / ade_split
    dirs = ([img_dir, pan_dir] if 'coco' in tasks else []) + (
        [ade_img_dir, ade_ann_dir] if 'ade' in tasks else [])
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)

    images, instances, pan_anns = [], [], []
    coco_names, ade_names = [], []
    for idx in range(num):
        rng = _image_rng(seed, _SCENE_KEY, split, idx)
        # Exactly one val image without things, to exercise empty-gt handling downstream.
        scene = make_scene(rng, min_things=0 if (split == 'val' and idx == 0) else 1, style=style)
        image_id = idx + 1 + (VAL_ID_OFFSET if split == 'val' else 0)
        anns, pan_ids, segments, ade = _scene_annotations(scene, rng, image_id,
                                                          len(instances) + 1)
        jpeg = _encode_jpeg(scene.image)
        h, w = ade.shape
        stats['tiny'] += sum(a['area'] <= 30 for a in anns)
        if 'coco' in tasks:
            name = f'{image_id:012d}'
            (img_dir / f'{name}.jpg').write_bytes(jpeg)
            _save_png(ids_to_rgb(pan_ids), pan_dir / f'{name}.png')
            coco_names.append(name)
            images.append(dict(id=image_id, file_name=f'{name}.jpg', height=h, width=w))
            instances.extend(anns)
            pan_anns.append(dict(image_id=image_id, file_name=f'{name}.png',
                                 segments_info=segments))
        if 'ade' in tasks:
            name = f'ADE_{split}_{idx + 1:08d}'
            (ade_img_dir / f'{name}.jpg').write_bytes(jpeg)
            _save_png(ade, ade_ann_dir / f'{name}.png')
            ade_names.append(name)

    info = dict(description='mmcluster synthetic toy data', version='1.0', year=2024)
    if 'coco' in tasks:
        ann_dir = coco_dir / 'annotations'
        _write_json(dict(info=info, licenses=[], images=images, annotations=instances,
                         categories=_instance_categories()),
                    ann_dir / f'instances_{split}2017.json')
        _write_json(dict(info=info, licenses=[], images=images, annotations=pan_anns,
                         categories=_panoptic_categories()),
                    ann_dir / f'panoptic_{split}2017.json')
        _prune(img_dir, (f'{n}.jpg' for n in coco_names), r'\d{12}\.jpg')
        _prune(pan_dir, (f'{n}.png' for n in coco_names), r'\d{12}\.png')
        stats[f'coco/{split}'] = f'{len(images)} images, {len(instances)} instances'
    if 'ade' in tasks:
        _prune(ade_img_dir, (f'{n}.jpg' for n in ade_names), rf'ADE_{split}_\d{{8}}\.jpg')
        _prune(ade_ann_dir, (f'{n}.png' for n in ade_names), rf'ADE_{split}_\d{{8}}\.png')
        stats[f'ade/{ade_split}'] = f'{len(ade_names)} images'


def _write_imagenet_split(out: Path, split: str, per_class: int, seed: int,
                          stats: dict, style: SceneStyle = PRESETS['default']) -> None:
    """Writes ``per_class`` classification images per thing class plus meta/<split>.txt."""
    root = out / 'imagenet'
    lines = []
    for label, cls in enumerate(THING_CLASSES):
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(per_class):
            scene = make_cls_scene(_image_rng(seed, _CLS_KEY, split, label, i), label, style)
            name = f'{cls}_{split}_{i:05d}.jpg'
            (folder / name).write_bytes(_encode_jpeg(scene.image))
            names.append(name)
            lines.append(f'{cls}/{name} {label}\n')
        _prune(folder, names, rf'{cls}_{split}_\d{{5}}\.jpg')
    meta = root / 'meta' / f'{split}.txt'
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(''.join(lines), encoding='utf-8')
    stats[f'imagenet/{split}'] = f'{len(lines)} images, {len(THING_CLASSES)} classes'


def make_toy_data(out_dir: Union[str, Path], seed: int = 0, num_train: int = 240, num_val: int = 60,
                  num_cls_per_class: int = 60, num_cls_val_per_class: Optional[int] = None,
                  tasks: Sequence[str] = TASKS, verbose: bool = False, preset: str = 'default') -> Dict[str, str]:
    """Writes the toy datasets under ``out_dir`` (layout in the module docstring).

    Args:
        out_dir: Output root; created if missing, files in it are overwritten.
        seed: Base seed; identical seeds give byte-identical files.
        num_train: Number of train scenes (COCO train2017 / ADE training).
        num_val: Number of val scenes (COCO val2017 / ADE validation).
        num_cls_per_class: ImageNet-style train images per class.
        num_cls_val_per_class: ImageNet-style val images per class; default
            ``max(1, num_cls_per_class // 4)``.
        tasks: Subset of ('coco', 'ade', 'imagenet').
        verbose: Print a summary at the end.
        preset: Scene style, a key of :data:`PRESETS` (``default``: the toy data of the tests and configs;
            ``mini``: the benchmark protocol's smaller images with fewer, larger things). The stamp records a
            preset other than ``default``.

    Returns:
        Paths (as str) of the generated roots and annotation files, keyed by name, e.g.
        'coco', 'coco_train_instances', 'coco_val_panoptic', 'ade', 'imagenet'.
    """
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f'unknown tasks {sorted(unknown)}; choose from {TASKS}')
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose from {sorted(PRESETS)}')
    style = PRESETS[preset]
    if num_cls_val_per_class is None:
        num_cls_val_per_class = max(1, num_cls_per_class // 4)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {'tiny': 0}
    start = time.perf_counter()
    if 'coco' in tasks or 'ade' in tasks:
        for split, num in (('train', num_train), ('val', num_val)):
            _write_scene_split(out, split, num, seed, tasks, stats, style)
    if 'imagenet' in tasks:
        for split, num in (('train', num_cls_per_class), ('val', num_cls_val_per_class)):
            _write_imagenet_split(out, split, num, seed, stats, style)

    settings = dict(seed=seed, num_train=num_train, num_val=num_val, num_cls_per_class=num_cls_per_class,
                    num_cls_val_per_class=num_cls_val_per_class, tasks=sorted(tasks))
    if preset != 'default':  # the default stamp stays as it always was (byte-identical default output)
        settings['preset'] = preset
    before = read_stamp(out)
    if before is not None and {k: v for k, v in before.items() if k != 'tasks'} == \
            {k: v for k, v in settings.items() if k != 'tasks'}:
        settings['tasks'] = sorted(set(settings['tasks']) | set(before.get('tasks', [])))
    else:  # other settings: what an earlier stamp listed is no longer consistent with the new files
        (out / STAMP).unlink(missing_ok=True)
    _write_json(settings, out / STAMP)  # last: an interrupted run leaves no stamp

    paths = {'root': str(out)}
    if 'coco' in tasks:
        ann = out / 'coco' / 'annotations'
        paths['coco'] = str(out / 'coco')
        for split in ('train', 'val'):
            paths[f'coco_{split}_images'] = str(out / 'coco' / f'{split}2017')
            paths[f'coco_{split}_instances'] = str(ann / f'instances_{split}2017.json')
            paths[f'coco_{split}_panoptic'] = str(ann / f'panoptic_{split}2017.json')
            paths[f'coco_{split}_panoptic_masks'] = str(ann / f'panoptic_{split}2017')
    if 'ade' in tasks:
        paths['ade'] = str(out / 'ade')
    if 'imagenet' in tasks:
        paths['imagenet'] = str(out / 'imagenet')
        paths['imagenet_train_meta'] = str(out / 'imagenet' / 'meta' / 'train.txt')
        paths['imagenet_val_meta'] = str(out / 'imagenet' / 'meta' / 'val.txt')

    if verbose:
        print(f'toy data written to {out} in {time.perf_counter() - start:.1f}s (seed {seed})')
        for key, value in stats.items():
            if key != 'tiny':
                print(f'  {key:<18} {value}')
        if 'coco' in tasks or 'ade' in tasks:
            print(f'  tiny things (<=30 px): {stats["tiny"]}')
        for key, value in paths.items():
            print(f'  {key:<28} {value}')
    return paths


def read_stamp(root: Union[str, Path]) -> Optional[dict]:
    """The settings of the last complete :func:`make_toy_data` run in ``root`` (None: none completed)."""
    path = Path(root) / STAMP
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except ValueError:
        return None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', help='output root folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=240, help='train scenes (COCO / ADE)')
    parser.add_argument('--num-val', type=int, default=60, help='val scenes (COCO / ADE)')
    parser.add_argument('--num-cls-per-class', type=int, default=60,
                        help='ImageNet-style train images per class')
    parser.add_argument('--num-cls-val-per-class', type=int, default=None,
                        help='ImageNet-style val images per class (default: train // 4)')
    parser.add_argument('--tasks', nargs='+', choices=TASKS, default=list(TASKS))
    parser.add_argument('--preset', choices=sorted(PRESETS), default='default',
                        help='scene style: default (the tests\' toy data) or mini (the benchmark protocol\'s)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    make_toy_data(args.out, seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                  num_cls_per_class=args.num_cls_per_class,
                  num_cls_val_per_class=args.num_cls_val_per_class, tasks=args.tasks,
                  verbose=True, preset=args.preset)

