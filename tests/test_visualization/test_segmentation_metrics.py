"""Undersegmentation error / ASA / leakage on hand-made partitions, ground-truth reading, and the drawing
primitives (grid placement, boundaries, masks, palette)."""
import numpy as np
import pytest
from PIL import Image

from mmcluster.visualization import (distinct_colors, draw_boundaries, draw_mask, grid_to_pixels, infer_stride,
                                     read_gt, undersegmentation)


def test_undersegmentation_by_hand():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    gt = np.array([[5, 5, 5, 9], [5, 5, 5, 9]])
    r = undersegmentation(labels, gt)
    # S0 ⊂ G5: no leak; S1 = 2 px of G5 + 2 px of G9: min(2, 2) + min(2, 2)
    assert r['ue'] == pytest.approx(4 / 8) and r['asa'] == pytest.approx(6 / 8)
    assert r['leakage'].sum() == 2 and not r['leakage'][:, :2].any()
    gt_ignore = gt.copy()
    gt_ignore[:, 3] = 0  # ignored pixels count nowhere
    r = undersegmentation(labels, gt_ignore, ignore_value=0)
    assert r['ue'] == 0 and r['asa'] == 1 and not r['leakage'].any()
    assert undersegmentation(labels, np.zeros_like(gt), ignore_value=0)['asa'] == 1  # nothing valid
    with pytest.raises(ValueError):
        undersegmentation(labels, gt[:, :3])


def test_read_gt(tmp_path):
    ids = np.array([[0, 300], [70000, 5]])
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'pan.png')
    assert (read_gt(tmp_path / 'pan.png', 'coco-panoptic') == ids).all()
    Image.fromarray(np.array([[0, 3]], np.uint8)).save(tmp_path / 'label.png')
    assert read_gt(tmp_path / 'label.png').tolist() == [[0, 3]]
    with pytest.raises(ValueError, match='label'):
        read_gt(tmp_path / 'label.png', 'cityscapes')


def test_grid_placement():
    # stride 4 inferred from ceil(10 / 4) = 3, ceil(9 / 4) = 3: cells of 4 px, the last cut by the image
    assert infer_stride((3, 3), (10, 9)) == 4
    labels = np.arange(9).reshape(3, 3)
    pix = grid_to_pixels(labels, (10, 9))
    assert pix[:, 0:4].tolist() == [[0] * 4] * 4 + [[3] * 4] * 4 + [[6] * 4] * 2
    assert pix[0].tolist() == [0] * 4 + [1] * 4 + [2]
    # crop to the image (the top-left part of a padded input)
    assert grid_to_pixels(labels, (12, 12), (5, 6)).tolist()[4] == [3] * 4 + [4] * 2
    # no power-of-two stride fits 3 cells on 7 px: spread evenly, pixel x -> cell floor(3 x / 7)
    assert infer_stride((1, 3), (1, 7)) is None
    assert grid_to_pixels(np.array([[0, 1, 2]]), (1, 7))[0].tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_drawing_primitives():
    img = np.zeros((4, 8, 3), np.uint8)
    labels = np.repeat(np.repeat(np.array([[0, 1], [0, 1]]), 2, 0), 4, 1)
    out = draw_boundaries(img, labels)  # boundary: the right neighbour differs at column 3
    assert (out[:, 3] == 255).all() and (out[:, [0, 1, 2, 4, 5, 6, 7]] == 0).all()
    leak = np.zeros((4, 8), bool)
    leak[0, 0] = True
    red = draw_mask(img, leak, alpha=1.0)
    assert tuple(red[0, 0]) == (255, 0, 0) and red[1:].max() == 0
    colors = distinct_colors(3000, seed=1)
    assert len({tuple(c) for c in colors}) == 3000 and not {(255, 255, 255), (0, 0, 0)} & {tuple(c) for c in colors}
