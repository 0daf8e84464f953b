"""HCFormer cluster visualisation: undersegmentation error / ASA / leakage on a hand-made example, drawing, and
tools/visualization/hc_boundaries.py on a toy config (random weights) writing its PNGs."""
import json

import numpy as np
import pytest

from mmcluster.visualization.hc_clusters import draw_boundaries, draw_leakage, undersegmentation


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
    with pytest.raises(ValueError):
        undersegmentation(labels, gt[:, :3])


def test_drawing():
    img = np.zeros((4, 8, 3), np.uint8)
    out = draw_boundaries(img, np.array([[0, 1], [0, 1]]))  # upsampled x4: boundary at column 3
    assert (out[:, 3] == 255).all() and (out[:, [0, 1, 2, 4, 5, 6, 7]] == 0).all()
    leak = np.zeros((4, 8), bool)
    leak[0, 0] = True
    red = draw_leakage(img, leak, alpha=1.0)
    assert tuple(red[0, 0]) == (255, 0, 0) and red[1:].max() == 0


def test_tool_writes_pngs(tmp_path, repo_root):
    from conftest import load_tool
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(tmp_path / 'img.png')
    gt = np.zeros((70, 90), np.uint8)
    gt[:, 40:] = 3
    gt[:10] = 0  # void
    Image.fromarray(gt).save(tmp_path / 'gt.png')
    tool = load_tool('tools/visualization/hc_boundaries.py')
    out = tmp_path / 'vis'
    results = tool.main([str(repo_root / 'configs/hcformer/hcformer_r18_1xb4-toy_coco-panoptic.py'),
                         '--image', str(tmp_path / 'img.png'), '--gt', str(tmp_path / 'gt.png'),
                         '--out-dir', str(out)])
    assert list(results) == ['level0_stride32', 'level1_stride16', 'level2_stride8']
    for name, row in results.items():
        assert 0 <= row['ue'] <= 1 and 0 <= row['asa'] <= 1
        for kind in ('boundaries', 'leakage'):
            assert np.asarray(Image.open(out / f'{name}_{kind}.png')).shape == (70, 90, 3)
    # 3x3 stride-32 cells at most (the image pads to 96x96), more clusters at finer levels
    assert results['level0_stride32']['clusters'] <= 9
    assert json.loads((out / 'summary.json').read_text()) == results
